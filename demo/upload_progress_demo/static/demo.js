// The demo page: the chosen files go up as one form (one upload) with a
// total bar and one bar per file, fed by the add-on's client; then what the
// server does with them (its stages); and the "my uploads" panel fed by the
// listing.
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

// One bar per chosen file: the form sends them in this order, and the
// server lists the parts it has seen in body order, so part i is file i.
function showFiles(rows, files) {
  rows.forEach((row, i) => {
    const part = files?.[i];
    const received = part?.received ?? 0;
    const percent = part?.done ? 100 : Math.min(100, (100 * received) / (row.size || 1));
    row.bar.value = percent;
    row.dataset.percent = percent.toFixed(1);
    row.dataset.done = String(Boolean(part?.done));
    row.numbers.textContent = `${formatBytes(received)} of ${formatBytes(row.size)}`
      + (part?.done ? ' ✓' : part ? '' : ' · not yet');
  });
}

function describeStage(up) {
  if (up.state !== 'uploading') return '';
  if (up.stage) {
    const count = up.stage.total == null ? '' : ` ${up.stage.done ?? 0} of ${up.stage.total}`;
    return `The server has the whole upload and is now at: ${up.stage.name}${count}…`;
  }
  return up.size != null && up.received >= up.size ? 'The server has the whole upload…' : '';
}

function showProgress(item, up, transfer) {
  const { bar, numbers, rows, stage, warning } = item.parts;
  item.dataset.state = up.state;
  if (up.received === 0 && (up.state === 'starting' || up.state === 'uploading')) {
    // The server has seen nothing yet: the bar follows the browser's count.
    if (transfer.percent == null) bar.removeAttribute('value');
    else bar.value = transfer.percent;
    item.dataset.browserPercent = transfer.percent?.toFixed(1) ?? '';
    numbers.textContent = `the server has not seen the body yet · your browser sent `
      + `${formatBytes(transfer.sent)} of ${formatBytes(transfer.total)}`;
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
  showFiles(rows, up.files);
  stage.textContent = describeStage(up);
  item.dataset.stage = up.state === 'uploading' ? (up.stage?.name ?? '') : '';
  warning.hidden = !transfer.buffering;
  item.dataset.buffering = String(transfer.buffering);
}

function showCancelled(item, how) {
  item.dataset.outcome = 'cancelled';
  item.dataset.ending = how;
  item.parts.result.textContent = how === '409' || item.dataset.cancelledByServer === 'true'
    ? 'Cancelled: the server stopped it too.'
    : 'Cancelled: the browser stopped sending; the server ends the upload when the connection does.';
}

function showResponse(item, response) {
  const { result } = item.parts;
  if (response.status === 409 && response.upload.cancelled) {
    showCancelled(item, '409');
  } else if (response.ok && response.json) {
    const { files, received } = response.json;
    item.dataset.outcome = 'stored';
    result.textContent = `The server received ${files.length} file(s), ${formatBytes(received)} `
      + `(${received} bytes): ${files.map((f) => `${f.name} (sha256 ${f.sha256.slice(0, 12)}…)`).join(', ')}; `
      + 'it checked and stored each one, then deleted them all (this is a demo).';
  } else {
    item.dataset.outcome = 'refused';
    const why = response.json?.error ?? response.text.slice(0, 200);
    result.textContent = `The server refused the upload (${response.status}): ${why}`;
  }
}

function showFailure(item, error) {
  const status = error.upload?.status;
  if (error.name === 'AbortError') {
    showCancelled(item, 'aborted');
  } else {
    item.dataset.outcome = 'failed';
    item.parts.result.textContent = status
      ? `The server refused the upload (${status}${status === 413 ? ': larger than the limit' : ''}) and closed the connection.`
      : `The upload broke off: ${error.message}.`;
  }
}

function fileRow(file) {
  const row = element('li', 'file');
  row.size = file.size;
  row.bar = element('progress');
  row.bar.max = 100;
  row.numbers = element('span', 'numbers');
  row.append(element('span', 'file-name', file.name), row.bar, row.numbers);
  return row;
}

// All chosen files in one multipart form: one upload, one total bar, and
// one bar per file fed by the UPLOAD's `files`.
function startUpload(chosen, list, options) {
  const item = element('li', 'upload');
  const rows = chosen.map(fileRow);
  item.parts = {
    bar: element('progress'),
    numbers: element('div', 'numbers', 'starting…'),
    rows,
    stage: element('div', 'stage'),
    warning: element('div', 'warning', 'Your browser has sent most of the form, but the server '
      + 'has not seen the body yet: a proxy or the server is buffering it. The bar shows what '
      + 'your browser has sent until the server has it all.'),
    result: element('div', 'result'),
  };
  item.parts.bar.max = 100;
  item.parts.warning.hidden = true;
  showFiles(rows, null);
  const cancel = element('button', 'cancel', 'Cancel');
  cancel.type = 'button';
  const { bar, numbers, stage, warning, result } = item.parts;
  const files = element('ul', 'files');
  files.append(...rows);
  const title = chosen.length === 1 ? chosen[0].name : `${chosen.length} files in one form`;
  item.append(element('div', 'name', title), bar, numbers, files, stage, warning, cancel, result);
  list.prepend(item);

  const form = new FormData();
  for (const file of chosen) form.append('files', file);
  const handle = upload(options.uploadUrl, form, {
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
    if (input.files.length) startUpload([...input.files], list, options);
    form.reset();
  });
  const tbody = document.getElementById('my-uploads');
  watchUploads((uploads) => showMine(tbody, uploads), { ...options, interval: 700 }).done
    .catch((error) => {
      const row = element('tr');
      row.append(element('td', null, `The listing stopped: ${error.message}.`));
      row.firstChild.colSpan = 5;
      tbody.replaceChildren(row);
    });
}
