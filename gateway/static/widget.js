// The book widget's loader, one tag in the book's pages:
//   <script src="https://HOST/widget.js" data-tutor-url="https://HOST" defer></script>
// A classic script (what a Docusaurus `scripts` entry is), so it can read its own tag; the widget itself
// is a module imported from the service, which serves it with CORS.
(() => {
  const script = document.currentScript;
  if (!script || window.physicalAiTutorWidget) return;
  window.physicalAiTutorWidget = 'loading';
  const configured = script.dataset.tutorUrl;
  // The service's base address, ending in "/": from data-tutor-url, or where this script came from.
  const base = configured ? new URL(configured.replace(/\/*$/, '/'), location.href) : new URL('./', script.src);
  import(new URL('static/widget-app.js', base).href)
    .then((widget) => {
      window.physicalAiTutorWidget = widget.mountWidget({ base: base.href });
    })
    .catch((error) => console.error('Physical AI tutor: the widget could not load', error));
})();
