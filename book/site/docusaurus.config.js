// @ts-check
// The sample book (../docs) as a Docusaurus 3 site, set up as `npx create-docusaurus@3.10.2 site classic
// --javascript` does (Docusaurus Faster on through `future.v4`), without the template's blog and pictures (its favicon stays).
// scripts/build_docusaurus_fixture.sh builds it into tests/fixtures/docusaurus/.

import {themes as prismThemes} from 'prism-react-renderer';

// Where the tests serve the build: the sitemap's URLs name this origin.
const SITE_URL = 'http://127.0.0.1:8000';
// The tutor's address in the widget's tag. `.invalid` never resolves: whoever serves the build puts the
// real service's address in its place (the browser tests do, at serve time).
const TUTOR_URL = 'http://tutor.invalid';

/** @type {import('@docusaurus/types').Config} */
const config = {
  title: 'Physical AI & Humanoid Robotics',
  tagline: 'A sample book for the AI tutor',
  favicon: 'img/favicon.ico',

  future: {
    v4: true,
  },

  url: SITE_URL,
  baseUrl: '/',

  onBrokenLinks: 'throw',

  // The book's pages are plain Markdown (.md) with TeX such as `$z_c$`, which MDX would read as JSX:
  // .md files are parsed as CommonMark, .mdx files as MDX.
  markdown: {
    format: 'detect',
  },

  i18n: {
    defaultLocale: 'en',
    locales: ['en'],
  },

  // The book widget, as the README tells a book's author to add it.
  scripts: [
    {
      src: `${TUTOR_URL}/widget.js`,
      'data-tutor-url': TUTOR_URL,
      defer: true,
    },
  ],

  presets: [
    [
      'classic',
      /** @type {import('@docusaurus/preset-classic').Options} */
      ({
        docs: {
          path: '../docs',
          sidebarPath: './sidebars.js',
        },
        blog: false,
        theme: {
          customCss: './src/css/custom.css',
        },
      }),
    ],
  ],

  themeConfig:
    /** @type {import('@docusaurus/preset-classic').ThemeConfig} */
    ({
      colorMode: {
        respectPrefersColorScheme: true,
      },
      navbar: {
        title: 'Physical AI Book',
        items: [
          {
            type: 'docSidebar',
            sidebarId: 'bookSidebar',
            position: 'left',
            label: 'Book',
          },
        ],
      },
      footer: {
        style: 'dark',
        links: [
          {
            title: 'Book',
            items: [
              {
                label: 'What is physical AI?',
                to: '/docs/foundations/what-is-physical-ai',
              },
            ],
          },
        ],
        copyright: `Physical AI & Humanoid Robotics, a sample book. Built with Docusaurus.`,
      },
      prism: {
        theme: prismThemes.github,
        darkTheme: prismThemes.dracula,
        additionalLanguages: ['bash'],
      },
    }),
};

export default config;
