// Runs before the first paint: scripts are on, so dialogs are dialogs (not forms in place).
document.documentElement.classList.replace("no-js", "js");
