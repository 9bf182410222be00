/* Cumulo studio: the workspace page's "Open Notebooks" button. It asks the server for
   the workspace's JupyterLab, shows it starting, and opens it in a new tab. */
(function () {
  "use strict";

  var button = document.getElementById("open-notebooks");
  var box = document.getElementById("notebooks");
  var status = document.getElementById("notebooks-status");
  if (!button || !box || button.disabled) { return; }
  var url = box.getAttribute("data-url");

  function call(method) {
    return fetch(url, { method: method, headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) { throw new Error(body.message || ("HTTP " + r.status)); }
          return body;
        });
      });
  }

  function show(text, link) {
    status.className = "muted";
    status.textContent = text;
    if (link) {
      var a = document.createElement("a");
      a.href = link;
      a.target = "_blank";
      a.rel = "noopener";
      a.textContent = "open JupyterLab";
      status.appendChild(document.createTextNode(" "));
      status.appendChild(a);
    }
  }

  button.addEventListener("click", function () {
    // The tab is opened now, while the click allows it, and sent to JupyterLab once it
    // answers: a tab opened later, from a timer, would be taken for a pop-up and blocked.
    var tab = window.open("", "_blank");
    if (tab) {
      tab.opener = null;
      tab.document.title = "Starting JupyterLab…";
      tab.document.body.textContent = "Starting JupyterLab…";
    }
    var started = Date.now();
    button.disabled = true;
    show("starting JupyterLab…");

    function poll(body) {
      if (body.status === "running") {
        button.disabled = false;
        show("JupyterLab runs for this workspace:", body.url);
        if (tab) { tab.location.href = body.url; } else { window.open(body.url, "_blank", "noopener"); }
        return null;
      }
      if (body.status !== "starting") { throw new Error(body.message || "JupyterLab stopped."); }
      show("starting JupyterLab… " + Math.round((Date.now() - started) / 1000) + " s");
      return new Promise(function (done) { setTimeout(done, 500); })
        .then(function () { return call("GET"); })
        .then(poll);
    }

    call("POST").then(poll).catch(function (err) {
      if (tab) { tab.close(); }
      button.disabled = false;
      status.className = "error";
      status.textContent = err.message;
    });
  });
})();
