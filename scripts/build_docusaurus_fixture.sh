#!/usr/bin/env bash
# Rebuilds tests/fixtures/docusaurus/: the sample book (book/docs) built by Docusaurus 3 from the project in
# book/site (create-docusaurus's classic template, Docusaurus Faster on). Needs Node >= 20 and the npm
# registry; not part of `make test`, which only reads the committed build.
#
#   scripts/build_docusaurus_fixture.sh            # WORK=/tmp/physical-ai-book-site keeps node_modules
#
# The build is made outside the repository (node_modules is ~300 MB), then only what the tests use is
# copied: every HTML page, sitemap.xml, the JS/CSS the pages load and the favicon (without it a browser
# asks for /favicon.ico and logs the 404). Left out: .nojekyll; the template's other pictures and its blog
# are not in book/site at all.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${WORK:-/tmp/physical-ai-book-site}
out="$repo/tests/fixtures/docusaurus"

mkdir -p "$work/site"
# The project's own files replace the previous copy; node_modules stays to make a rebuild quick.
find "$work/site" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} +
cp -a "$repo/book/site/." "$work/site/"
rm -rf "$work/docs"
cp -a "$repo/book/docs" "$work/docs"

cd "$work/site"
# `npm install` with the lock, not `npm ci`: npm 11 leaves @swc/html's other-platform binaries out of the
# lock it writes, and `npm ci` then refuses it as out of sync.
npm install --no-audit --no-fund
rm -rf "$work/build"
npx docusaurus build --out-dir "$work/build"

rm -rf "$out"
mkdir -p "$out"
cd "$work/build"
find . -type f \( -name '*.html' -o -name 'sitemap.xml' -o -path './assets/js/*.js' -o -path './assets/css/*.css' \
  -o -path ./img/favicon.ico \) \
  -exec cp --parents {} "$out/" \;
echo "built $(find "$out" -name '*.html' | wc -l) pages into $out ($(du -sh "$out" | cut -f1))"
