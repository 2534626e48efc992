// The browser client of pyramid_upload_progress: one dependency-free ES module.
//
// It speaks the nginx upload-progress protocol (the id in the X-Progress-ID
// query parameter; states starting, uploading, done, error; received, size,
// status), so it works against pyramid_upload_progress's report view and
// against nginx's upload progress module alike. The README documents its API
// with a complete page.

const DEFAULTS = Object.freeze({
  progressUrl: '/upload-progress', // the report view (nginx: report_uploads)
  idParam: 'X-Progress-ID',        // upload_progress.id_param
  method: 'POST',
  headers: {},                     // sent with every request, e.g. a CSRF token
  interval: 500,                   // ms between polls
  maxInterval: 8000,               // ms: the most a poll backs off to
  cancelTimeout: 3000,             // ms the server has to answer a DELETE
  bufferingDelay: 1000,            // ms the server's count stands still while the
  bufferingRatio: 0.5,             // browser is this share of the body ahead: buffered
  finalPolls: 8,                   // polls after the response, for the final record
});

const FINAL_STATES = new Set(['done', 'error']);
const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const OK = 'ok';
const RETRY = 'retry';
const STOP = 'stop';

/** A fresh upload id: crypto.randomUUID(), or 32 random id characters where
 * there is none (crypto.randomUUID exists only on https and localhost). */
export function newUploadId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const bytes = new Uint8Array(32);
  if (globalThis.crypto?.getRandomValues) {
    globalThis.crypto.getRandomValues(bytes);
  } else {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  return Array.from(bytes, (b) => ID_ALPHABET[b % ID_ALPHABET.length]).join('');
}

/** An UPLOAD with every field of the contract, from a report answer: ours
 * has them all; nginx's module sends only state, received, size (and status
 * for an error). `percent` is worked out where the server leaves it out. */
export function normalizeUpload(raw, id = null) {
  const upload = {
    id, state: 'starting', received: 0, size: null, percent: null, rate: null,
    eta: null, started: null, finished: null, path: null, status: null,
    cancelled: false, files: null, stage: null, ...raw,
  };
  if (upload.percent == null && !('percent' in raw)) {
    if (upload.state === 'done') upload.percent = 100;
    else if (upload.size > 0) upload.percent = Math.min(100, (100 * upload.received) / upload.size);
  }
  return upload;
}

/** The body of a report answer: JSON, or nginx's module's default output
 * (`new Object({ 'state' : 'uploading', ... })`) and its JSONP form. */
export function parseReport(text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    const object = /\{[\s\S]*\}/.exec(text);
    if (!object) throw error;
    return JSON.parse(object[0].replace(/'/g, '"'));
  }
}

function options(given) {
  return { ...DEFAULTS, ...given, headers: { ...DEFAULTS.headers, ...given?.headers } };
}

function withParam(url, name, value) {
  const resolved = new URL(url, document.baseURI);
  resolved.searchParams.set(name, value);
  return resolved.href;
}

async function getReport(url, o) {
  const response = await fetch(url, {
    headers: { Accept: 'application/json', ...o.headers },
    cache: 'no-store',
    credentials: 'same-origin',
  });
  if (response.status === 429 || response.status >= 500) return { outcome: RETRY };
  if (!response.ok) return { outcome: STOP, status: response.status };
  return { outcome: OK, body: parseReport(await response.text()) };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Runs `step` every `interval` ms, one at a time; after a RETRY (503, 429,
// a network error) the wait doubles up to `maxInterval`; STOP ends it.
class Poller {
  constructor(step, o) {
    this.step = step;
    this.o = o;
    this.delay = o.interval;
    this.timer = null;
    this.stopped = false;
  }

  start(wait = 0) {
    this.timer = setTimeout(() => this.run(), wait);
    return this;
  }

  async run() {
    let outcome;
    try {
      outcome = await this.step();
    } catch {
      outcome = RETRY;
    }
    if (this.stopped) return;
    if (outcome === STOP) {
      this.stop();
      return;
    }
    this.delay = outcome === RETRY ? Math.min(2 * this.delay, this.o.maxInterval) : this.o.interval;
    this.timer = setTimeout(() => this.run(), this.delay);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

// Asks the server to cancel upload `id` (DELETE on the report view). True
// when it did; false when it cannot (nginx's module, an older add-on: 404,
// 405) or did not answer in time.
async function askServerToCancel(id, o) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), o.cancelTimeout);
  try {
    const response = await fetch(withParam(o.progressUrl, o.idParam, id), {
      method: 'DELETE',
      headers: { Accept: 'application/json', ...o.headers },
      credentials: 'same-origin',
      signal: abort.signal,
    });
    return response.ok;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Why an upload ended without a response: `name` is 'AbortError' after
 * cancel(), else 'NetworkError'; `upload` is the last UPLOAD seen, which
 * often says why (e.g. `status: 413` when the server refused the body and
 * closed the connection). */
export class UploadError extends Error {
  constructor(name, message, upload) {
    super(message);
    this.name = name;
    this.upload = upload;
  }
}

/**
 * Sends `body` (a FormData, File or Blob) to `url` with XHR under a fresh
 * upload id, and polls the report view meanwhile.
 *
 * `onProgress(upload, transfer)` is called on every poll and every XHR
 * progress event: `upload` is the last UPLOAD from the server (with `files`
 * and `stage` when it gives them), `transfer` is `{sent, total, buffering}`:
 * the browser's own count of bytes sent, and whether something in front of
 * the server is buffering the body (it warns once on the console too).
 *
 * Returns `{id, done, cancel()}`. `done` resolves with the server's response
 * `{status, ok, text, json, upload}` (a 4xx/5xx too), or rejects with an
 * UploadError when there is none. `cancel()` asks the server to cancel
 * (DELETE, where it offers it), aborts the XHR, and resolves with whether the
 * server cancelled.
 */
export function upload(url, body, given = {}) {
  const o = options(given);
  const id = o.id ?? newUploadId();
  const xhr = new XMLHttpRequest();
  const transfer = { sent: 0, total: body.size ?? null, buffering: false };
  let serverMovedAt = Date.now();
  let warned = false;
  let last = normalizeUpload({}, id);
  let finished = false;

  const report = () => o.onProgress?.(last, { ...transfer });
  // The browser's count runs ahead of the server's by what the network and
  // the kernels hold (megabytes, on a fast link); but while the server's
  // count goes on growing nothing is holding the body back. A proxy that
  // buffers passes nothing on until it has it all, and the browser's count
  // stops short of the end only by what that proxy's socket holds. (A
  // FormData's size is known only from the first XHR progress event.)
  const checkBuffering = () => {
    transfer.buffering = transfer.total > 0
      && Date.now() - serverMovedAt >= o.bufferingDelay
      && !FINAL_STATES.has(last.state)
      && transfer.sent - last.received >= o.bufferingRatio * transfer.total;
    if (transfer.buffering && !warned) {
      warned = true;
      console.warn(`upload-progress: the browser has sent all ${transfer.total} bytes of upload `
        + `${id}, the server has received ${last.received}: something in front of the server `
        + '(a proxy without request buffering turned off, e.g. nginx without '
        + '"proxy_request_buffering off;") is buffering the body, so the server sees it only at the end.');
    }
  };
  const pollOnce = async () => {
    const answer = await getReport(withParam(o.progressUrl, o.idParam, id), o);
    if (answer.outcome === OK) {
      const before = last.received;
      last = normalizeUpload(answer.body, id);
      if (last.received > before) serverMovedAt = Date.now();
      checkBuffering();
      report();
    }
    return answer.outcome;
  };
  const poller = new Poller(async () => {
    const outcome = await pollOnce();
    return outcome === OK && FINAL_STATES.has(last.state) ? STOP : outcome;
  }, o);
  // After the response: the record ends when the server closes the
  // response, a moment later; a few polls fetch its final state.
  const settle = async () => {
    finished = true;
    poller.stop();
    for (let i = 0; i < o.finalPolls && !FINAL_STATES.has(last.state); i++) {
      if (i) await sleep(o.interval / 2);
      try {
        if ((await pollOnce()) === STOP) break;
      } catch {
        // the network is gone: keep what we have
      }
    }
  };

  const done = new Promise((resolve, reject) => {
    xhr.upload.onprogress = (event) => {
      transfer.sent = event.loaded;
      if (event.lengthComputable) transfer.total = event.total;
      report();
    };
    xhr.onload = async () => {
      await settle();
      let json = null;
      try {
        json = JSON.parse(xhr.responseText);
      } catch {
        // not JSON: the caller has the text
      }
      resolve({
        status: xhr.status, ok: xhr.status >= 200 && xhr.status < 300,
        text: xhr.responseText, json, upload: last,
      });
    };
    const fail = (name, message) => async () => {
      await settle();
      reject(new UploadError(name, message, last));
    };
    xhr.onerror = fail('NetworkError', 'the upload broke off before the server answered');
    xhr.onabort = fail('AbortError', 'the upload was cancelled');
  });

  xhr.open(o.method, withParam(url, o.idParam, id));
  for (const [name, value] of Object.entries(o.headers)) xhr.setRequestHeader(name, value);
  xhr.send(body);
  poller.start(o.interval / 2);

  return {
    id,
    done,
    async cancel() {
      if (finished) return false;
      const cancelled = await askServerToCancel(id, o);
      xhr.abort();
      return cancelled;
    },
  };
}

/**
 * Watches an upload that this page did not start (another tab, an admin
 * page) by its id: `onProgress(upload)` on every poll. Returns `{id, done,
 * stop(), cancel()}`; `done` resolves with the final UPLOAD (done or error),
 * or rejects when the report refuses the poll (a 4xx: a bad id, no
 * permission); `cancel()` asks the server to cancel it and resolves with
 * whether it did.
 */
export function watch(id, given = {}) {
  const o = options(given);
  let poller;
  const done = new Promise((resolve, reject) => {
    poller = new Poller(async () => {
      const answer = await getReport(withParam(o.progressUrl, o.idParam, id), o);
      if (answer.outcome === STOP) {
        // A 4xx (a bad id, a missing permission): polling again cannot help.
        reject(new Error(`the upload progress report answered ${answer.status}`));
        return STOP;
      }
      if (answer.outcome !== OK) return answer.outcome;
      const upload = normalizeUpload(answer.body, id);
      o.onProgress?.(upload);
      if (!FINAL_STATES.has(upload.state)) return OK;
      resolve(upload);
      return STOP;
    }, o).start();
  });
  return { id, done, stop: () => poller.stop(), cancel: () => askServerToCancel(id, o) };
}

/** The signed-in user's uploads, newest first (the report view's listing). */
export async function listUploads(given = {}) {
  const o = options(given);
  const answer = await getReport(new URL(o.progressUrl, document.baseURI).href, o);
  if (answer.outcome !== OK) throw new Error(`the upload listing answered ${answer.status ?? 'an error'}`);
  return answer.body.uploads.map((raw) => normalizeUpload(raw, raw.id));
}

/** Polls the listing: `onUpdate(uploads)` every `interval`; returns `{stop()}`. */
export function watchUploads(onUpdate, given = {}) {
  const o = options(given);
  const poller = new Poller(async () => {
    onUpdate(await listUploads(o));
    return OK;
  }, o).start();
  return { stop: () => poller.stop() };
}
