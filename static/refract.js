/* Refract console: a few progressive enhancements, no dependencies, nothing from a CDN. */
(function () {
  "use strict";

  /* Copy buttons: <button data-copy="#element-id">. The one-time secret stays selectable. */
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = ("value" in source ? source.value : source.textContent).trim();
    var status = button.parentElement.querySelector(".copy-status");
    copyText(text).then(function () {
      if (status) { status.textContent = "Copied"; }
    }, function () {
      source.focus();
      if (source.select) { source.select(); }
      if (status) { status.textContent = "Press Ctrl+C"; }
    });
  });

  /* <form data-confirm="Question?">: ask before a destructive action. */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  /* <button type="submit" formaction="url" data-fragment="#target">: post the form to the url
     and put the answer (an HTML fragment) in place of #target, without leaving the page
     ("Test connection"). Without script the button posts the form and the page comes back. */
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-fragment]");
    if (!button || !button.form) { return; }
    event.preventDefault();
    var target = document.querySelector(button.getAttribute("data-fragment"));
    var label = button.textContent;
    button.disabled = true;
    button.textContent = button.getAttribute("data-busy") || label;
    fetch(button.getAttribute("formaction"), {
      method: "POST", body: new FormData(button.form), credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", "Accept": "text/html" }
    }).then(function (response) { return response.text(); }).then(function (html) {
      var holder = document.createElement("div");
      holder.innerHTML = html.trim();
      if (target && holder.firstElementChild) { target.replaceWith(holder.firstElementChild); }
    }, function () {
      if (target) { target.textContent = "The console did not answer: try again."; }
    }).finally(function () {
      button.disabled = false;
      button.textContent = label;
    });
  });

  /* <input data-slug-from="id_name">: suggest a slug from the name until the user edits it. */
  function slugify(text) {
    return text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40).replace(/-+$/g, "");
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-slug-from]").forEach(function (slug) {
      var name = document.getElementById(slug.getAttribute("data-slug-from"));
      if (!name) { return; }
      var edited = slug.value !== "" && slug.value !== slugify(name.value);
      slug.addEventListener("input", function () { edited = slug.value !== ""; });
      name.addEventListener("input", function () {
        if (!edited) { slug.value = slugify(name.value); }
      });
    });
  });

  /* <div id="…" data-refresh="url">: while the attribute is there, fetch the url every second
     and put the answer (the same element, updated) in its place. A server's status page uses
     it while provisioning; the answer drops the attribute once the status is final. */
  function refresh(element) {
    var url = element.getAttribute("data-refresh");
    window.setTimeout(function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (!response.ok) { throw { status: response.status }; }
          return response.text();
        })
        .then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html.trim();
          var updated = holder.firstElementChild;
          if (!updated) { return; }
          element.replaceWith(updated);
          if (updated.hasAttribute("data-refresh")) { refresh(updated); return; }
          /* data-reload-when-done: the rest of the page depends on the final status (a
             server's services, its configuration): load it again once. */
          if (element.hasAttribute("data-reload-when-done")) { window.location.reload(); }
        }, function (error) {
          /* A network blip or a server error: try again. A 4xx (signed out, gone) stops; a
             404 for an element with data-gone="text" (a service being deleted) says it. */
          if (!error.status || error.status >= 500) { refresh(element); return; }
          var gone = element.getAttribute("data-gone");
          if (error.status === 404 && gone) {
            var note = document.createElement("p");
            note.setAttribute("data-testid", "gone");
            note.textContent = gone;
            element.replaceChildren(note);
            element.removeAttribute("data-refresh");
          }
        });
    }, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(refresh);
  });

  /* The new service form: <select> options carry data-name-budget; #name-budget says the
     chosen server's budget for a service name and its stage. */
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select.id !== "id_server") { return; }
    var option = select.options[select.selectedIndex];
    var help = document.getElementById("name-budget");
    if (!option || !help) { return; }
    help.setAttribute("data-name-budget", option.getAttribute("data-name-budget"));
    help.querySelector("[data-budget-server]").textContent = option.getAttribute("data-server-name");
    help.querySelector("[data-budget-chars]").textContent = option.getAttribute("data-name-budget");
  });
})();
