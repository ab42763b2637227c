// Copy buttons. Everything else works without JavaScript; without it the
// id and the secret are still on the page to select by hand.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button.copy");
  if (!button) return;
  var source = button.getAttribute("data-copy-from");
  var text = source ? document.getElementById(source).value : button.getAttribute("data-copy");
  if (navigator.clipboard) {
    navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
  }
});
