// The demo page: tabs, the drawing canvas, and each form sent as JSON to /run/<page>, its answer shown below it.
"use strict";

const MAX_UPLOAD_BYTES = 20 * 1024 * 1024;

function showTab(key) {
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== "tab-" + key;
  for (const button of document.querySelectorAll(".tab")) button.classList.toggle("active", button.dataset.tab === key);
  history.replaceState(null, "", "#" + key);
}

function setUpDrawing(canvas) {
  const pen = canvas.getContext("2d");
  pen.lineWidth = 20;
  pen.lineCap = pen.lineJoin = "round";
  pen.strokeStyle = "#fff";
  canvas.drawn = false;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (event) => {
    canvas.closest("form").querySelector("input[type=file]").value = "";  // drawing: the drawing is what is read
    canvas.setPointerCapture(event.pointerId);
    pen.beginPath();
    pen.moveTo(...at(event));
    canvas.drawing = true;
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!canvas.drawing) return;
    pen.lineTo(...at(event));
    pen.stroke();
    canvas.drawn = true;
  });
  canvas.addEventListener("pointerup", () => { canvas.drawing = false; });
  canvas.closest("form").querySelector(".clear").addEventListener("click", () => {
    pen.clearRect(0, 0, canvas.width, canvas.height);
    canvas.drawn = false;
  });
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// The picture a form sends: the chosen file, else the drawing (black background, white ink, as drawn).
async function upload(form) {
  const input = form.querySelector("input[type=file]");
  const file = input && input.files[0];
  if (file) {
    if (file.size > MAX_UPLOAD_BYTES) throw new Error(file.name + ": larger than 20 MB; pictures up to 20 MB are accepted");
    return { name: file.name, data: (await readFile(file)).split(",")[1] || "" };
  }
  const canvas = form.querySelector("canvas");
  if (canvas && canvas.drawn) {
    const flat = document.createElement("canvas");
    flat.width = canvas.width;
    flat.height = canvas.height;
    const pen = flat.getContext("2d");
    pen.fillStyle = "#000";
    pen.fillRect(0, 0, flat.width, flat.height);
    pen.drawImage(canvas, 0, 0);
    return { name: "drawing.png", data: flat.toDataURL("image/png").split(",")[1] };
  }
  return null;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function show(result, answer) {
  result.replaceChildren();
  if (answer.error) {
    result.append(element("p", "error", answer.error));
    return;
  }
  if (answer.lines.length) result.append(element("pre", "lines", answer.lines.join("\n")));
  for (const [label, value] of answer.bars) {
    const bar = element("div", "bar");
    bar.dataset.label = label;
    const track = element("span", "track");
    const fill = element("span", "fill");
    fill.style.width = Math.round(value * 100) + "%";
    fill.style.display = "block";
    track.append(fill);
    bar.append(element("span", "label", label), track, element("span", "value", (value * 100).toFixed(1) + "%"));
    result.append(bar);
  }
  for (const [caption, source] of answer.pictures) {
    const figure = element("figure");
    const picture = element("img");
    picture.src = source;
    picture.alt = caption;
    figure.append(picture, element("figcaption", "", caption));
    result.append(figure);
  }
}

async function run(form) {
  const key = form.dataset.page;
  const status = form.querySelector(".status");
  const button = form.querySelector("button[type=submit]");
  const result = document.getElementById("result-" + key);
  const started = Date.now();
  const clock = setInterval(() => { status.textContent = "working… " + Math.round((Date.now() - started) / 1000) + " s"; }, 500);
  status.textContent = "working…";
  button.disabled = true;
  try {
    const values = {};
    for (const input of form.querySelectorAll("input[name], select[name], textarea[name]")) {
      if (input.type === "file") continue;
      values[input.name] = input.type === "checkbox" ? input.checked : input.value;
    }
    const body = JSON.stringify({ form: values, upload: await upload(form) });
    const response = await fetch("/run/" + key, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    show(result, await response.json());
    status.textContent = "done in " + ((Date.now() - started) / 1000).toFixed(1) + " s";
  } catch (error) {
    show(result, { error: error.message });
    status.textContent = "";
  } finally {
    clearInterval(clock);
    button.disabled = false;
  }
}

for (const button of document.querySelectorAll(".tab")) button.addEventListener("click", () => showTab(button.dataset.tab));
for (const canvas of document.querySelectorAll(".drawing canvas")) setUpDrawing(canvas);
for (const form of document.querySelectorAll("form[data-page]")) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(form);
  });
}
const first = document.querySelector(".tab");
const wanted = location.hash.slice(1);
showTab(document.getElementById("tab-" + wanted) ? wanted : first.dataset.tab);
