// Appends a running job's output to the page as it arrives, from the
// server-sent events of /1.0/job/<id>/output; reloads the page when the job
// ends so its exit and times show. Without JavaScript the page refreshes itself.
(function () {
  "use strict";
  var pre = document.getElementById("output");
  if (!pre || !pre.dataset.stream || !window.EventSource) {
    return;
  }
  var live = document.getElementById("live");
  var url = pre.dataset.stream + "?after=" + encodeURIComponent(pre.dataset.after || "0");
  var source = new EventSource(url);
  if (live) {
    live.textContent = "(live)";
  }
  source.addEventListener("output", function (event) {
    var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
    pre.appendChild(document.createTextNode(JSON.parse(event.data)));
    if (atBottom) {
      window.scrollTo(0, document.body.scrollHeight);
    }
  });
  source.addEventListener("end", function () {
    source.close();
    window.location.reload();
  });
})();
