// The demo page: one upload (and one bar) per chosen file, fed by the
// add-on's client, and the "my uploads" panel fed by the listing.
// Everything the server sends goes into the page as text, never as HTML.
import { upload, watchUploads } from 'upload-progress';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

function formatBytes(bytes) {
  if (bytes == null) return '?';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${UNITS[unit]}`;
}

function formatPercent(percent) {
  return percent == null ? '?' : `${percent.toFixed(1)} %`;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function showProgress(item, up, transfer) {
  const { bar, numbers, files, stage, warning } = item.parts;
  item.dataset.state = up.state;
  if (up.state === 'starting') {
    bar.removeAttribute('value');
    numbers.textContent = `waiting for the server… (browser sent ${formatBytes(transfer.sent)})`;
  } else {
    if (up.percent != null) {
      bar.value = up.percent;
      item.dataset.percent = up.percent.toFixed(1);
    }
    const rate = up.rate == null ? '' : ` · ${formatBytes(up.rate)}/s`;
    const eta = up.eta == null ? '' : ` · ${Math.ceil(up.eta)} s left`;
    numbers.textContent = `${formatPercent(up.percent)} · ${formatBytes(up.received)} of `
      + `${formatBytes(up.size)}${rate}${eta} · browser sent ${formatBytes(transfer.sent)}`;
  }
  files.replaceChildren(...(up.files ?? []).map((file) => element('li', null,
    `${file.filename} (${file.field}): ${formatBytes(file.received)}${file.done ? ' ✓' : ''}`)));
  const total = up.stage?.total == null ? '' : ` ${up.stage.done ?? 0}/${up.stage.total}`;
  stage.textContent = up.stage ? `server: ${up.stage.name}${total}` : '';
  warning.hidden = !transfer.buffering;
  item.dataset.buffering = String(transfer.buffering);
}

function showResponse(item, response) {
  const { result } = item.parts;
  if (response.ok && response.json) {
    const stored = response.json;
    item.dataset.outcome = 'stored';
    result.textContent = `The server received ${formatBytes(stored.received)} `
      + `(${stored.received} bytes, sha256 ${stored.sha256.slice(0, 16)}…), wrote them to `
      + `${stored.stored_as} as they arrived, then deleted the file (this is a demo).`;
  } else {
    item.dataset.outcome = 'refused';
    const why = response.json?.error ?? response.text.slice(0, 200);
    result.textContent = `The server refused the upload (${response.status}): ${why}`;
  }
}

function showFailure(item, error) {
  const { result } = item.parts;
  const status = error.upload?.status;
  if (error.name === 'AbortError') {
    item.dataset.outcome = 'cancelled';
    result.textContent = item.dataset.cancelledByServer === 'true'
      ? 'Cancelled: the server stopped it too.'
      : 'Cancelled: the browser stopped sending; the server ends the upload when the connection does.';
  } else {
    item.dataset.outcome = 'failed';
    result.textContent = status
      ? `The server refused the upload (${status}${status === 413 ? ': larger than the limit' : ''}) and closed the connection.`
      : `The upload broke off: ${error.message}.`;
  }
}

function startUpload(file, list, options) {
  const item = element('li', 'upload');
  item.parts = {
    bar: element('progress'),
    numbers: element('div', 'numbers', 'starting…'),
    files: element('ul', 'files'),
    stage: element('div', 'stage'),
    warning: element('div', 'warning', 'Your browser has sent the whole file, but the server '
      + 'has received far less: something in front of it (a proxy) is buffering the upload, '
      + 'so the bar can only jump at the end.'),
    result: element('div', 'result'),
  };
  item.parts.bar.max = 100;
  item.parts.warning.hidden = true;
  const cancel = element('button', 'cancel', 'Cancel');
  cancel.type = 'button';
  const { bar, numbers, files, stage, warning, result } = item.parts;
  item.append(element('div', 'name', file.name), bar, numbers, files, stage, warning, cancel, result);
  list.prepend(item);

  const url = new URL(options.uploadUrl, document.baseURI);
  url.searchParams.set('name', file.name);
  const handle = upload(url.href, file, {
    ...options, onProgress: (up, transfer) => showProgress(item, up, transfer),
  });
  item.dataset.uploadId = handle.id;
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    result.textContent = 'Cancelling…';
    item.dataset.cancelledByServer = String(await handle.cancel());
  });
  handle.done
    .then((response) => showResponse(item, response), (error) => showFailure(item, error))
    .finally(() => { cancel.disabled = true; });
}

function showMine(tbody, uploads) {
  tbody.replaceChildren(...uploads.map((up) => {
    const row = element('tr');
    row.dataset.uploadId = up.id ?? '';
    row.dataset.state = up.state;
    row.dataset.received = String(up.received);
    const state = up.cancelled ? `${up.state} (cancelled)` : up.state;
    const progress = `${formatPercent(up.percent)} (${formatBytes(up.received)} of ${formatBytes(up.size)})`;
    for (const text of [(up.id ?? '—').slice(0, 8), up.path, state, progress, up.status ?? '']) {
      row.append(element('td', null, String(text)));
    }
    return row;
  }));
}

const section = document.getElementById('send');
if (section) {
  const { uploadUrl, progressUrl, maxUploadSize } = section.dataset;
  const options = {
    uploadUrl,
    progressUrl,
    interval: 300,
    headers: { 'X-CSRF-Token': document.querySelector('meta[name="csrf-token"]').content },
  };
  document.getElementById('limit').textContent = formatBytes(Number(maxUploadSize));
  const form = document.getElementById('upload-form');
  const input = document.getElementById('files');
  const list = document.getElementById('uploads');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    for (const file of input.files) startUpload(file, list, options);
    form.reset();
  });
  const tbody = document.getElementById('my-uploads');
  watchUploads((uploads) => showMine(tbody, uploads), { ...options, interval: 700 });
}
