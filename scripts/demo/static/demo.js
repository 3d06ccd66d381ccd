// The drawing page: sends the picture to the demo server's /api/explain, which asks TorchServe
// (holding the key server-side) and answers with the digit, the probabilities, the 28x28 model
// input and an Integrated Gradients map. No key or TorchServe address ever reaches this page.
"use strict";

const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const result = document.getElementById("result");
const message = document.getElementById("message");
const bars = document.getElementById("bars");
let picture = null; // the Blob last sent: a bar click explains it for another digit
let sent = 0; // requests sent; an answer older than the newest is dropped
let strokes = 0;
let sendTimer = null;

function clearPad() {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  strokes = 0;
}

function showMessage(text) {
  message.textContent = text;
  message.hidden = !text;
}

function reset() {
  clearTimeout(sendTimer);
  clearPad();
  picture = null;
  sent += 1; // answers still on their way are stale now
  document.body.dataset.sent = String(sent);
  document.body.dataset.state = "idle";
  result.hidden = true;
  showMessage("");
}

// ---- drawing ---------------------------------------------------------------------------

function point(event) {
  const box = pad.getBoundingClientRect();
  return [((event.clientX - box.left) * pad.width) / box.width, ((event.clientY - box.top) * pad.height) / box.height];
}

let drawing = null;

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  clearTimeout(sendTimer);
  if (picture && strokes === 0) clearPad(); // a new drawing replaces an uploaded picture
  drawing = point(event);
  ink.strokeStyle = "#000";
  ink.fillStyle = "#000";
  ink.lineWidth = pad.width / 14;
  ink.lineCap = "round";
  ink.lineJoin = "round";
  ink.beginPath();
  ink.arc(drawing[0], drawing[1], ink.lineWidth / 2, 0, 2 * Math.PI);
  ink.fill();
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  ink.beginPath();
  ink.moveTo(drawing[0], drawing[1]);
  for (const e of events.length ? events : [event]) {
    drawing = point(e);
    ink.lineTo(drawing[0], drawing[1]);
  }
  ink.stroke();
});

function endStroke() {
  if (!drawing) return;
  drawing = null;
  strokes += 1;
  // Wait a moment: a digit of several strokes is sent once, when the hand rests.
  clearTimeout(sendTimer);
  sendTimer = setTimeout(() => pad.toBlob((blob) => send(blob, null), "image/png"), 350);
}

pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

// ---- pictures: upload, camera, paste, drop --------------------------------------------

async function usePicture(file) {
  if (!file) return;
  clearTimeout(sendTimer);
  clearPad();
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const w = bitmap.width * scale;
    const h = bitmap.height * scale;
    ink.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
  } catch (error) {
    ink.fillStyle = "#57606a";
    ink.font = "16px system-ui, sans-serif";
    ink.fillText("(no preview for this file)", 20, pad.height / 2);
  }
  send(file, null); // the original file: the server decodes it as it would any upload
}

for (const id of ["upload", "camera"]) {
  const input = document.getElementById(id);
  input.addEventListener("change", () => {
    usePicture(input.files[0]);
    input.value = "";
  });
}

document.addEventListener("paste", (event) => {
  const item = [...(event.clipboardData ? event.clipboardData.items : [])].find((i) => i.kind === "file");
  if (item) {
    event.preventDefault();
    usePicture(item.getAsFile());
  }
});

pad.addEventListener("dragover", (event) => {
  event.preventDefault();
  pad.classList.add("dropping");
});
pad.addEventListener("dragleave", () => pad.classList.remove("dropping"));
pad.addEventListener("drop", (event) => {
  event.preventDefault();
  pad.classList.remove("dropping");
  usePicture(event.dataTransfer.files[0]);
});

document.getElementById("clear").addEventListener("click", reset);

// ---- asking the server -----------------------------------------------------------------

async function send(blob, target) {
  picture = blob;
  sent += 1;
  const seq = sent;
  document.body.dataset.sent = String(seq);
  document.body.dataset.state = "busy";
  const url = "/api/explain" + (target === null ? "" : "?target=" + target);
  let answer;
  let ok = false;
  try {
    const response = await fetch(url, {
      method: "POST",
      body: blob,
      headers: { "Content-Type": blob.type || "application/octet-stream" },
    });
    ok = response.ok;
    answer = await response.json().catch(() => ({ error: `the server answered HTTP ${response.status}` }));
  } catch (error) {
    answer = { error: "the demo server cannot be reached: is it still running?" };
  }
  if (seq !== sent) return; // a newer picture was sent meanwhile
  result.dataset.seq = String(seq);
  if (!ok) {
    document.body.dataset.state = "error";
    result.hidden = true;
    showMessage(answer.error || answer.message || "the picture could not be read");
    return;
  }
  showMessage("");
  render(answer);
  document.body.dataset.state = "done";
}

// ---- the answer ------------------------------------------------------------------------

function render(answer) {
  result.hidden = false;
  document.getElementById("digit").textContent = String(answer.digit);
  document.getElementById("confidence").textContent = `${(answer.confidence * 100).toFixed(1)}% sure`;
  document.getElementById("target").textContent = String(answer.target);
  const notDigit = document.getElementById("not-digit");
  notDigit.hidden = answer.is_digit !== false; // absent without a calibration: no verdict either way
  notDigit.textContent = answer.is_digit === false ? "This does not look like a handwritten digit: the digit above is only a guess." : "";
  bars.replaceChildren(
    ...answer.probabilities.map((p, digit) => {
      const bar = document.createElement("button");
      bar.type = "button";
      bar.className = "bar" + (digit === answer.digit ? " top" : "") + (digit === answer.target ? " target" : "");
      bar.setAttribute("role", "listitem");
      bar.title = `explain ${digit}`;
      bar.dataset.digit = String(digit);
      bar.innerHTML = '<span class="value"></span><span class="fill"></span><span class="label"></span>';
      bar.querySelector(".value").textContent = `${Math.round(p * 100)}%`;
      bar.querySelector(".fill").style.height = `${Math.max(p * 100, 1)}%`;
      bar.querySelector(".label").textContent = String(digit);
      bar.addEventListener("click", () => picture && send(picture, digit));
      return bar;
    }),
  );
  paint("model-view", answer.input, (v) => [v * 255, v * 255, v * 255]);
  const peak = Math.max(1e-9, ...answer.attributions.flat().map(Math.abs));
  paint("heatmap", answer.input, (v, r, c) => {
    const a = answer.attributions[r][c] / peak; // -1 .. 1
    const grey = v * 110; // the digit, dimmed, under the colours
    const strength = Math.sqrt(Math.abs(a)); // square root: weaker pixels stay visible next to the peak
    const colour = a > 0 ? [230, 40, 40] : [40, 110, 240];
    return colour.map((x) => grey + (x - grey) * strength);
  });
}

function paint(id, pixels, colour) {
  const canvas = document.getElementById(id);
  const context = canvas.getContext("2d");
  const image = context.createImageData(28, 28);
  for (let r = 0; r < 28; r += 1) {
    for (let c = 0; c < 28; c += 1) {
      const [red, green, blue] = colour(pixels[r][c], r, c);
      image.data.set([red, green, blue, 255], (r * 28 + c) * 4);
    }
  }
  context.putImageData(image, 0, 0);
  canvas.dataset.painted = String(Number(result.dataset.seq));
}

clearPad();
