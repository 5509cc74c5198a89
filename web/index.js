// onair web: landing page logic (the watch and studio forms)
const watchForm = document.getElementById("watch-form");
const studioForm = document.getElementById("studio-form");

watchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = watchForm.elements.room.value.trim();
  if (room) location.assign(`/watch/${encodeURIComponent(room)}`);
});

studioForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = studioForm.elements.room.value.trim();
  const token = studioForm.elements.token.value.trim();
  if (room && token) location.assign(`/studio/${encodeURIComponent(room)}?token=${encodeURIComponent(token)}`);
});
