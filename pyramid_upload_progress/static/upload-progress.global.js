// The browser client of pyramid_upload_progress: dependency-free, no build step.
//
// This file is the whole client. Loaded as a classic script
// (<script src=".../upload-progress.global.js">) it defines one global,
// `UploadProgress`; upload-progress.js, its ES-module face, imports it and
// exports the same names (a single file cannot be both: `export` is a syntax
// error in a classic script). Types: upload-progress.d.ts.
//
// It speaks the nginx upload-progress protocol (the id in the X-Progress-ID
// query parameter; states starting, uploading, done, error; received, size,
// status), so it works against pyramid_upload_progress's report view and
// against nginx's upload progress module alike. docs/client.rst documents it.
(function (root) {
  'use strict';

  const DEFAULTS = Object.freeze({
    progressUrl: '/upload-progress', // the report view (nginx: report_uploads)
    idParam: 'X-Progress-ID',        // upload_progress.id_param
    method: 'POST',
    headers: {},                     // sent with every request, e.g. a CSRF token
    credentials: 'same-origin',      // 'include' for a report view on another origin
    interval: 500,                   // ms between polls
    maxInterval: 8000,               // ms: the most a poll backs off to
    timeout: 5000,                   // ms a request to the report view may take
    bufferingDelay: 1000,            // ms after which a body the server has not seen,
    bufferingRatio: 0.5,             // of which the browser sent this share, is buffered
    finalPolls: 8,                   // polls after the response, for the final record
  });

  const STATES = ['starting', 'uploading', 'done', 'error'];
  const FINAL_STATES = new Set(['done', 'error']);
  const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const OK = 'ok';
  const RETRY = 'retry';
  const STOP = 'stop';

  /** A fresh upload id: 32 characters from crypto.getRandomValues (192 bits:
   * while an upload is pending its id is its only secret). */
  function newUploadId() {
    const bytes = root.crypto.getRandomValues(new Uint8Array(32));
    return Array.from(bytes, (b) => ID_ALPHABET[b % ID_ALPHABET.length]).join('');
  }

  const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);
  const count = (value) => (Number.isFinite(value) && value >= 0 ? value : null);
  const text = (value) => (typeof value === 'string' ? value : null);

  /** An UPLOAD with every field of the contract, each of its type, from a
   * report answer: ours has them all; nginx's module sends only state,
   * received, size (and status for an error); a field of the wrong type
   * becomes null (`received` 0, `state` 'starting'). Fields an app adds
   * pass through. `percent` is worked out where the server leaves it out. */
  function normalizeUpload(raw, id = null) {
    const given = isObject(raw) ? raw : {};
    const upload = {
      ...given,
      id: text(given.id) ?? id,
      state: STATES.includes(given.state) ? given.state : 'starting',
      received: count(given.received) ?? 0,
      size: count(given.size),
      percent: count(given.percent) === null ? null : Math.min(100, given.percent),
      rate: count(given.rate),
      eta: count(given.eta),
      started: count(given.started),
      finished: count(given.finished),
      path: text(given.path),
      status: Number.isInteger(given.status) ? given.status : null,
      cancelled: given.cancelled === true,
      files: Array.isArray(given.files) ? given.files.filter(isObject).map((file) => ({
        ...file,
        field: text(file.field),
        filename: text(file.filename),
        received: count(file.received) ?? 0,
        done: file.done === true,
      })) : null,
      stage: isObject(given.stage) && typeof given.stage.name === 'string' ? {
        ...given.stage, done: count(given.stage.done), total: count(given.stage.total),
      } : null,
    };
    if (!('percent' in given)) {
      if (upload.state === 'done') upload.percent = 100;
      else if (upload.size > 0) upload.percent = Math.min(100, (100 * upload.received) / upload.size);
    }
    return upload;
  }

  /** The object a report answer holds: JSON, or nginx's module's default
   * output (`new Object({ 'state' : 'uploading', ... })`) and its JSONP
   * form. Anything else (an HTML error page, say) throws. */
  function parseReport(body) {
    let value;
    try {
      value = JSON.parse(body);
    } catch (error) {
      // Trimmed first: whitespace on both sides of an optional ";" at the
      // end would make the pattern backtrack quadratically on a long tail.
      const nginx = /^(?:new\s+Object|[\w$.]+)\s*\(\s*(\{[^{}]*\})\s*\)\s*;?$/.exec(body.trim());
      if (!nginx) throw error;
      value = JSON.parse(nginx[1].replace(/'/g, '"'));
    }
    if (!isObject(value)) throw new SyntaxError('the report is not a JSON object');
    return value;
  }

  /** Why an upload or a watch ended without an answer: `name` is
   * 'AbortError' after cancel() or stop(), 'ReportError' when the report
   * view refused (a 4xx: `status`), else 'NetworkError'; `upload` is the
   * last UPLOAD seen, which often says why (e.g. `status: 413` when the
   * server refused the body and closed the connection). */
  class UploadError extends Error {
    constructor(name, message, upload = null, status = null) {
      super(message);
      this.name = name;
      this.upload = upload;
      this.status = status;
    }
  }

  const reportError = (status, upload = null) => new UploadError(
    'ReportError', `the upload progress report answered ${status}`, upload, status);

  function options(given) {
    return { ...DEFAULTS, ...given, headers: { ...given?.headers } };
  }

  function withParam(url, name, value) {
    const resolved = new URL(url, root.document.baseURI);
    resolved.searchParams.set(name, value);
    return resolved.href;
  }

  // One request to the report view, given up after `o.timeout` ms (the
  // body's arrival included): {status, body}, or a throw.
  async function ask(url, o, method = 'GET') {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), o.timeout);
    try {
      const response = await fetch(url, {
        method,
        headers: { Accept: 'application/json', ...o.headers },
        cache: 'no-store',
        credentials: o.credentials,
        signal: abort.signal,
      });
      return { status: response.status, body: await response.text() };
    } finally {
      clearTimeout(timer);
    }
  }

  // One poll: OK with the answer's object; RETRY on 429 and 5xx (a network
  // error, a timeout or a body that is no report throw); STOP on any other
  // refusal (4xx: a bad id, a missing permission), where asking again cannot help.
  async function getReport(url, o) {
    const { status, body } = await ask(url, o);
    if (status === 429 || status >= 500) return { outcome: RETRY, status };
    if (status < 200 || status >= 300) return { outcome: STOP, status };
    return { outcome: OK, body: parseReport(body) };
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // Runs `step` every `interval` ms, one at a time; after a RETRY (or a
  // throw) the wait doubles, up to `maxInterval` but never below
  // `interval`; STOP ends it.
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
      const { interval, maxInterval } = this.o;
      this.delay = outcome === RETRY ? Math.max(interval, Math.min(2 * this.delay, maxInterval)) : interval;
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
    try {
      const { status } = await ask(withParam(o.progressUrl, o.idParam, id), o, 'DELETE');
      return status >= 200 && status < 300;
    } catch {
      return false;
    }
  }

  /**
   * Sends `body` (a FormData, File or Blob) to `url` with XHR under a fresh
   * upload id, and polls the report view meanwhile.
   *
   * `onProgress(upload, transfer)` is called on every poll and every XHR
   * progress event: `upload` is the last UPLOAD from the server, `transfer`
   * is `{sent, total, percent, buffering}`: the browser's own count of bytes
   * sent (draw it while the server has seen nothing: `upload.received` 0),
   * and whether the body is held before the server (it warns once on the
   * console too).
   *
   * Returns `{id, done, cancel()}`. `done` resolves with the server's
   * response `{status, ok, text, json, upload}` (a 4xx/5xx too), or rejects
   * with an UploadError when there is none. `cancel()` asks the server to
   * cancel (DELETE, where it offers it), aborts the XHR, and resolves with
   * whether the server cancelled.
   */
  function upload(url, body, given = {}) {
    const o = options(given);
    const id = o.id ?? newUploadId();
    const xhr = new XMLHttpRequest();
    const transfer = { sent: 0, total: body.size ?? null, percent: null, buffering: false };
    const startedAt = Date.now();
    let warned = false;
    let last = normalizeUpload({}, id);
    let finished = false;

    const report = () => o.onProgress?.(last, { ...transfer });
    // The browser's count runs ahead of the server's by what the network
    // and the kernels hold (megabytes, on a fast link), so only a body the
    // server has not seen at all, well after the start, while the browser
    // has sent much of it, is held before it: by a proxy that passes the
    // body on only whole, or by the server itself (waitress, uWSGI's
    // post-buffering). Once the server's count rises it sees the bytes
    // arrive, and nothing is blamed. (A FormData's size is known only from
    // the first XHR progress event.)
    const checkBuffering = () => {
      transfer.buffering = last.received === 0
        && !FINAL_STATES.has(last.state)
        && transfer.total > 0
        && transfer.sent >= o.bufferingRatio * transfer.total
        && Date.now() - startedAt >= o.bufferingDelay;
      if (transfer.buffering && !warned) {
        warned = true;
        console.warn(`upload-progress: the browser has sent ${transfer.sent} of ${transfer.total} `
          + `bytes of upload ${id}, and the server has not seen the body yet: a proxy or the `
          + 'server is buffering it, so its progress shows only once the body is whole.');
      }
    };
    const pollOnce = async () => {
      const answer = await getReport(withParam(o.progressUrl, o.idParam, id), o);
      if (answer.outcome === OK) {
        last = normalizeUpload(answer.body, id);
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
    // response, a moment later; a few polls fetch its final state, for at
    // most `timeout` ms plus one poll.
    const settle = async () => {
      finished = true;
      poller.stop();
      const deadline = Date.now() + o.timeout;
      for (let i = 0; i < o.finalPolls && !FINAL_STATES.has(last.state); i++) {
        if (i) await sleep(o.interval / 2);
        if (Date.now() >= deadline) break;
        try {
          if ((await pollOnce()) === STOP) break;
        } catch {
          break; // the network is gone, or the report does not answer: keep what we have
        }
      }
    };

    const done = new Promise((resolve, reject) => {
      xhr.upload.onprogress = (event) => {
        transfer.sent = event.loaded;
        if (event.lengthComputable) transfer.total = event.total;
        transfer.percent = transfer.total > 0 ? Math.min(100, (100 * transfer.sent) / transfer.total) : null;
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
    xhr.withCredentials = o.credentials === 'include';
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

  // Polls with `step(answer)` until it returns STOP or stop() is called:
  // `{done, stop()}`, where `done` settles with what `step` hands to
  // `resolve`, rejects with a ReportError on a 4xx (the same rule for every
  // watcher) and with an AbortError on stop().
  function watcher(url, o, step) {
    let settle;
    let last = null;
    const done = new Promise((resolve, reject) => { settle = { resolve, reject }; });
    const poller = new Poller(async () => {
      const answer = await getReport(url, o);
      if (answer.outcome === STOP) settle.reject(reportError(answer.status, last));
      if (answer.outcome !== OK) return answer.outcome;
      const result = step(answer.body);
      last = result.last;
      if (!result.final) return OK;
      settle.resolve(last);
      return STOP;
    }, o).start();
    const stop = () => {
      poller.stop();
      settle.reject(new UploadError('AbortError', 'stopped watching', last));
    };
    return { done, stop };
  }

  /**
   * Watches an upload that this page did not start (another tab, an admin
   * page) by its id: `onProgress(upload)` on every poll. Returns `{id, done,
   * stop(), cancel()}`; `done` resolves with the final UPLOAD (done or
   * error), or rejects with an UploadError: 'ReportError' when the report
   * refuses the poll (a 4xx: a bad id, no permission), 'AbortError' after
   * stop(); `cancel()` asks the server to cancel it and resolves with
   * whether it did.
   */
  function watch(id, given = {}) {
    const o = options(given);
    const { done, stop } = watcher(withParam(o.progressUrl, o.idParam, id), o, (body) => {
      const last = normalizeUpload(body, id);
      o.onProgress?.(last);
      return { last, final: FINAL_STATES.has(last.state) };
    });
    return { id, done, stop, cancel: () => askServerToCancel(id, o) };
  }

  function uploadsOf(body) {
    if (!Array.isArray(body.uploads)) throw new SyntaxError('the listing has no uploads');
    return body.uploads.map((raw) => normalizeUpload(raw));
  }

  /** The signed-in user's uploads, newest first (the report view's
   * listing); rejects with a 'ReportError' UploadError when refused. */
  async function listUploads(given = {}) {
    const o = options(given);
    const answer = await getReport(new URL(o.progressUrl, root.document.baseURI).href, o);
    if (answer.outcome !== OK) throw reportError(answer.status);
    return uploadsOf(answer.body);
  }

  /** Polls the listing: `onUpdate(uploads)` every `interval`. Returns
   * `{done, stop()}`; `done` rejects as watch()'s does: on a 4xx, on stop(). */
  function watchUploads(onUpdate, given = {}) {
    const o = options(given);
    return watcher(new URL(o.progressUrl, root.document.baseURI).href, o, (body) => {
      const uploads = uploadsOf(body);
      onUpdate(uploads);
      return { last: null, final: false };
    });
  }

  root.UploadProgress = Object.freeze({
    upload, watch, listUploads, watchUploads, newUploadId, normalizeUpload, parseReport, UploadError,
  });
})(globalThis);
