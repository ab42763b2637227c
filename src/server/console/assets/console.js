// Copy buttons. Everything else works without JavaScript; without it the
// id and the secret are still on the page to select by hand.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button.copy");
  if (!button) return;
  var source = button.getAttribute("data-copy-from");
  var from = source ? document.getElementById(source) : null;
  var text = from ? (from.value !== undefined ? from.value : from.textContent) : button.getAttribute("data-copy");
  if (navigator.clipboard) {
    navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
  }
});
