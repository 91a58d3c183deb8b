// Client-side search over window.VF_INDEX (assets/search-index.js): every word must match.
(function () {
  var input = document.getElementById("search"), list = document.getElementById("results");
  function show() {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    list.innerHTML = "";
    if (!words.length) return;
    var found = window.VF_INDEX.filter(function (entry) {
      var text = (entry.t + " " + entry.k + " " + entry.d).toLowerCase();
      return words.every(function (word) { return text.indexOf(word) >= 0; });
    });
    // Names that match first: a search for a column should show the column before mentions.
    found.sort(function (a, b) {
      return (b.t.toLowerCase().indexOf(words[0]) >= 0) - (a.t.toLowerCase().indexOf(words[0]) >= 0);
    });
    found.slice(0, 25).forEach(function (entry) {
      var item = document.createElement("li"), link = document.createElement("a");
      link.href = window.VF_ROOT + entry.u;
      link.textContent = entry.t;
      var kind = document.createElement("small");
      kind.textContent = entry.k;
      link.appendChild(kind);
      item.appendChild(link);
      list.appendChild(item);
    });
  }
  input.addEventListener("input", show);
  input.addEventListener("keydown", function (event) {
    var first = list.querySelector("a");
    if (event.key === "Enter" && first) window.location.href = first.href;
  });
})();
