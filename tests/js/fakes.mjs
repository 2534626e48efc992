// Fakes for the client's tests under node's test runner: a browser's
// document, fetch and XMLHttpRequest, and a clock under node:test's mock
// timers. Each test file runs in its own process, so the globals set here
// are that file's alone.
import { mock } from 'node:test';

export const BASE = 'http://app.test/page';
globalThis.document = { baseURI: BASE };

/** A report view run by the test: `answer(request)` returns
 * `{status, body, delay}` (delay in ms of the fake clock, or `hang: true`)
 * for each request, which is also kept in `requests`. */
export class FakeServer {
  constructor(answer) {
    this.answer = answer;
    this.requests = [];
    globalThis.fetch = (url, init = {}) => this.fetch(url, init);
  }

  fetch(url, init) {
    const request = { url: new URL(url), method: init.method ?? 'GET', at: Date.now(), init };
    this.requests.push(request);
    const { status = 200, body = '', delay = 0, hang = false } = this.answer(request);
    return new Promise((resolve, reject) => {
      init.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      if (hang) return;
      const send = () => resolve(new Response(typeof body === 'string' ? body : JSON.stringify(body),
        { status }));
      if (delay) setTimeout(send, delay);
      else send();
    });
  }

  polls() {
    return this.requests.filter((r) => r.method === 'GET');
  }
}

/** The XMLHttpRequest the client makes: the test plays the network. */
export class FakeXHR {
  static last = null;

  constructor() {
    FakeXHR.last = this;
    this.upload = {};
    this.headers = {};
    this.withCredentials = false;
  }

  open(method, url) {
    Object.assign(this, { method, url: new URL(url) });
  }

  setRequestHeader(name, value) {
    this.headers[name] = value;
  }

  send(body) {
    this.body = body;
  }

  progress(loaded, total) {
    this.upload.onprogress({ loaded, total, lengthComputable: true });
  }

  respond(status, responseText) {
    Object.assign(this, { status, responseText });
    this.onload();
  }

  abort() {
    this.aborted = true;
    this.onabort();
  }
}
globalThis.XMLHttpRequest = FakeXHR;

/** The fake clock, from 0 ms; `advance(ms)` moves it in steps and lets the
 * client's promises run between them. */
export function useFakeClock(t) {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  t.after(() => mock.timers.reset());
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

export async function advance(ms, step = 50) {
  for (let passed = 0; passed < ms; passed += step) {
    mock.timers.tick(Math.min(step, ms - passed));
    for (let i = 0; i < 5; i++) await turn();
  }
}

/** A JSON record as the report view answers it. */
export const record = (fields) => ({
  id: 'x', state: 'uploading', received: 0, size: 1000, percent: 0, rate: null, eta: null,
  started: 1, finished: null, path: '/upload', status: null, cancelled: false, files: null,
  stage: null, ...fields,
});
