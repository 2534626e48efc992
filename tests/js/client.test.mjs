// The JavaScript client on its own: a fake report view, a fake XHR and a
// fake clock (node:test's mock timers). Run: node --test tests/js/
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mock, test } from 'node:test';

import { advance, FakeServer, FakeXHR, record, useFakeClock } from './fakes.mjs';
import * as client from '../../pyramid_upload_progress/static/upload-progress.js';

const { listUploads, newUploadId, normalizeUpload, parseReport, upload, watch, watchUploads } = client;
const gaps = (requests) => requests.slice(1).map((r, i) => r.at - requests[i].at);
const HOSTILE = '<img src=x onerror="window.pwned=1">';

test('back-off never polls faster than the interval', async (t) => {
  useFakeClock(t);
  const server = new FakeServer(() => ({ status: 503, body: '<html>busy</html>' }));
  const watching = watch('abc', { interval: 9000, maxInterval: 8000 });
  watching.done.catch(() => {});
  await advance(40000, 500);
  watching.stop();
  assert.ok(server.polls().length >= 4);
  assert.ok(gaps(server.polls()).every((gap) => gap >= 9000), gaps(server.polls()));
});

test('back-off doubles up to maxInterval, and an answer brings the interval back', async (t) => {
  useFakeClock(t);
  let failing = true;
  const server = new FakeServer(() => (failing ? { status: 503 } : { body: record({}) }));
  const watching = watch('abc', { interval: 500, maxInterval: 4000 });
  watching.done.catch(() => {});
  await advance(16000, 100);
  assert.deepEqual(gaps(server.polls()), [1000, 2000, 4000, 4000, 4000]);
  failing = false;
  await advance(5000, 100);
  const last = gaps(server.polls()).slice(-3);
  watching.stop();
  assert.deepEqual(last, [500, 500, 500]);
});

for (const [name, start] of [
  ['watch()', (o) => watch('abc', o)],
  ['watchUploads()', (o) => watchUploads(() => {}, o)],
]) {
  test(`${name} stops and rejects on a 4xx, as every watcher does`, async (t) => {
    useFakeClock(t);
    const server = new FakeServer(() => ({ status: 403, body: { error: 'forbidden' } }));
    const watching = start({ interval: 100 });
    const rejected = assert.rejects(watching.done, { name: 'ReportError', status: 403 });
    await advance(2000);
    await rejected;
    assert.equal(server.polls().length, 1);
  });

  test(`${name} retries 429 and 503`, async (t) => {
    useFakeClock(t);
    const statuses = [429, 503];
    const server = new FakeServer(() => ({ status: statuses.shift() ?? 200,
      body: { ...record({ state: 'done' }), uploads: [] } }));
    const watching = start({ interval: 100 });
    watching.done.catch(() => {});
    await advance(2000);
    watching.stop();
    assert.ok(server.polls().length >= 3, server.polls().length);
  });

  test(`${name}.stop() settles done with an AbortError and polls no more`, async (t) => {
    useFakeClock(t);
    const server = new FakeServer(() => ({ body: { ...record({}), uploads: [] } }));
    const watching = start({ interval: 100 });
    await advance(500);
    watching.stop();
    await assert.rejects(watching.done, { name: 'AbortError' });
    const polls = server.polls().length;
    await advance(1000);
    assert.equal(server.polls().length, polls);
  });
}

test('watch() resolves with the final upload', async (t) => {
  useFakeClock(t);
  let received = 0;
  new FakeServer(() => {
    received += 400;
    return { body: record(received >= 1000 ? { state: 'done', received: 1000 } : { received }) };
  });
  const seen = [];
  const watching = watch('abc', { interval: 100, onProgress: (up) => seen.push(up.received) });
  await advance(1000);
  assert.equal((await watching.done).state, 'done');
  assert.deepEqual(seen, [400, 800, 1000]);
});

test('ids come from crypto.getRandomValues, never Math.random', (t) => {
  const random = mock.method(Math, 'random');
  const getRandomValues = mock.method(globalThis.crypto, 'getRandomValues');
  t.after(() => mock.restoreAll());
  const ids = new Set(Array.from({ length: 200 }, newUploadId));
  assert.equal(ids.size, 200);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{32}$/);
  assert.equal(getRandomValues.mock.callCount(), 200);
  assert.equal(random.mock.callCount(), 0);
});

test('upload() sends the body under its id and resolves with the response', async (t) => {
  useFakeClock(t);
  let received = 0;
  const server = new FakeServer(() => ({ body: record(
    received === 1000 ? { state: 'done', received, status: 200 } : { received }) }));
  const seen = [];
  const sending = upload('/upload', { size: 1000 }, {
    headers: { 'X-CSRF-Token': 'tok' },
    onProgress: (up, transfer) => seen.push([up.received, transfer.sent]),
  });
  const xhr = FakeXHR.last;
  assert.equal(xhr.url.searchParams.get('X-Progress-ID'), sending.id);
  assert.equal(xhr.headers['X-CSRF-Token'], 'tok');
  xhr.progress(500, 1000);
  received = 500;
  await advance(500);
  xhr.progress(1000, 1000);
  received = 1000;
  xhr.respond(200, '{"stored": true}');
  await advance(500);
  const response = await sending.done;
  assert.deepEqual([response.status, response.ok, response.json], [200, true, { stored: true }]);
  assert.equal(response.upload.state, 'done');
  assert.ok(seen.some(([up, sent]) => up === 500 && sent === 500), seen);
  assert.equal(server.polls()[0].url.searchParams.get('X-Progress-ID'), sending.id);
  assert.equal(server.polls()[0].init.headers['X-CSRF-Token'], 'tok');
});

test('while the server has seen nothing, transfer reports the browser\'s sent/total', async (t) => {
  useFakeClock(t);
  new FakeServer(() => ({ body: record({ state: 'starting', size: null }) }));
  const transfers = [];
  const sending = upload('/upload', { size: 4000 }, { onProgress: (_, transfer) => transfers.push(transfer) });
  sending.done.catch(() => {});
  FakeXHR.last.progress(1000, 4000);
  FakeXHR.last.progress(3000, 4000);
  assert.deepEqual(transfers.map((tr) => tr.percent), [25, 75]);
  assert.equal(transfers[1].total, 4000);
  sending.cancel();
  await advance(100);
});

test('a body the server has not seen is called buffered, without blaming nginx', async (t) => {
  useFakeClock(t);
  const warn = mock.method(console, 'warn', () => {});
  t.after(() => mock.restoreAll());
  new FakeServer(() => ({ body: record({ state: 'starting', received: 0, size: null }) }));
  const transfers = [];
  const sending = upload('/upload', { size: 4000 }, { onProgress: (_, tr) => transfers.push(tr) });
  sending.done.catch(() => {});
  FakeXHR.last.progress(4000, 4000);
  await advance(2000);
  assert.equal(transfers.at(-1).buffering, true);
  assert.equal(warn.mock.callCount(), 1);
  const message = warn.mock.calls[0].arguments[0];
  assert.match(message, /the server has not seen the body yet: a proxy or the server is buffering it/);
  assert.doesNotMatch(message, /nginx|proxy_request_buffering/);
  sending.cancel();
  await advance(100);
});

test('no proxy is blamed once the server says it saw bytes arrive', async (t) => {
  useFakeClock(t);
  const warn = mock.method(console, 'warn', () => {});
  t.after(() => mock.restoreAll());
  // A server that counts the body as it buffers it (the waitress runner): its
  // count rises a little, then stands still while the browser is far ahead.
  new FakeServer(() => ({ body: record({ state: 'starting', received: 100, size: 100000 }) }));
  const transfers = [];
  const sending = upload('/upload', { size: 100000 }, { onProgress: (_, tr) => transfers.push(tr) });
  sending.done.catch(() => {});
  FakeXHR.last.progress(100000, 100000);
  await advance(5000);
  assert.ok(transfers.length > 5);
  assert.ok(transfers.every((tr) => !tr.buffering));
  assert.equal(warn.mock.callCount(), 0);
  sending.cancel();
  await advance(100);
});

test('credentials reach the polls, the cancel and the XHR', async (t) => {
  useFakeClock(t);
  const server = new FakeServer(() => ({ body: record({}) }));
  const sending = upload('/upload', { size: 10 }, {
    credentials: 'include', progressUrl: 'https://progress.example/upload-progress',
  });
  sending.done.catch(() => {});
  assert.equal(FakeXHR.last.withCredentials, true);
  await advance(500);
  await sending.cancel();
  await advance(100);
  assert.deepEqual(new Set(server.requests.map((r) => r.init.credentials)), new Set(['include']));
  assert.deepEqual(new Set(server.requests.map((r) => r.method)), new Set(['GET', 'DELETE']));
  assert.equal(server.requests[0].url.origin, 'https://progress.example');
});

test('the default is same-origin credentials, and no withCredentials', async (t) => {
  useFakeClock(t);
  const server = new FakeServer(() => ({ body: record({}) }));
  const sending = upload('/upload', { size: 10 });
  sending.done.catch(() => {});
  assert.equal(FakeXHR.last.withCredentials, false);
  await advance(500);
  sending.cancel();
  await advance(100);
  assert.equal(server.requests[0].init.credentials, 'same-origin');
});

test('cancel() asks the server, aborts the XHR and rejects done with an AbortError', async (t) => {
  useFakeClock(t);
  const server = new FakeServer((r) => ({ body: record({ cancelled: r.method === 'DELETE' }) }));
  const sending = upload('/upload', { size: 10 });
  const rejected = assert.rejects(sending.done, { name: 'AbortError' });
  const cancelled = sending.cancel();
  await advance(100);
  assert.equal(await cancelled, true);
  assert.equal(FakeXHR.last.aborted, true);
  await advance(5000);
  await rejected;
  assert.equal(server.requests.filter((r) => r.method === 'DELETE').length, 1);
});

test('a report that never answers times out: polls go on, done settles soon after the response', async (t) => {
  useFakeClock(t);
  const server = new FakeServer(() => ({ hang: true }));
  const sending = upload('/upload', { size: 10 }, { interval: 500, timeout: 2000 });
  let settled = null;
  sending.done.then((response) => { settled = { at: Date.now(), response }; });
  await advance(10000);
  assert.ok(server.polls().length >= 3, server.polls().length); // each given up, then retried
  const respondedAt = Date.now();
  FakeXHR.last.respond(201, 'stored');
  await advance(6000);
  assert.ok(settled, 'done settled');
  assert.equal(settled.response.status, 201);
  assert.ok(settled.at - respondedAt <= 2 * 2000, settled.at - respondedAt);
});

test('a slow report is waited for, one poll at a time', async (t) => {
  useFakeClock(t);
  let inFlight = 0;
  let most = 0;
  const server = new FakeServer(() => {
    inFlight += 1;
    most = Math.max(most, inFlight);
    setTimeout(() => { inFlight -= 1; }, 1500);
    return { body: record({ received: 5 }), delay: 1500 };
  });
  const seen = [];
  const sending = upload('/upload', { size: 10 }, { interval: 100, onProgress: (up) => seen.push(up.received) });
  sending.done.catch(() => {});
  await advance(8000);
  assert.equal(most, 1);
  assert.ok(server.polls().length >= 4);
  assert.ok(seen.includes(5));
  sending.cancel();
  await advance(100);
});

for (const [name, answer] of [
  ['an HTML error page (502)', { status: 502, body: '<html><style>p {color: red}</style>Bad gateway</html>' }],
  ['an HTML page answered 200', { status: 200, body: '<html><script>var a = {"state": "done"};</script></html>' }],
  ['a JSON array', { status: 200, body: '[1, 2]' }],
  ['JSON null', { status: 200, body: 'null' }],
]) {
  test(`${name} is no report: retried, never shown`, async (t) => {
    useFakeClock(t);
    const server = new FakeServer(() => answer);
    const seen = [];
    const sending = upload('/upload', { size: 10 }, { interval: 100, onProgress: (up) => seen.push(up) });
    await advance(3000);
    assert.ok(server.polls().length >= 3);
    assert.equal(seen.length, 0);
    FakeXHR.last.respond(200, 'ok');
    await advance(3000);
    assert.equal((await sending.done).upload.state, 'starting');
  });
}

test('a record with hostile values keeps its strings as strings and every field its type', () => {
  const up = normalizeUpload({
    id: 7, state: HOSTILE, received: 'lots', size: -5, percent: 'NaN', rate: Infinity, eta: {},
    started: '1', finished: null, path: HOSTILE, status: '500', cancelled: 'yes',
    files: [{ field: HOSTILE, filename: HOSTILE, received: '9', done: 1 }, 'x', null, [1]],
    stage: { name: HOSTILE, done: '3', total: 12 }, extra: HOSTILE,
  }, 'mine');
  assert.deepEqual(up, {
    id: 'mine', state: 'starting', received: 0, size: null, percent: null, rate: null, eta: null,
    started: null, finished: null, path: HOSTILE, status: null, cancelled: false,
    files: [{ field: HOSTILE, filename: HOSTILE, received: 0, done: false }],
    stage: { name: HOSTILE, done: null, total: 12 }, extra: HOSTILE,
  });
  assert.equal(normalizeUpload({ percent: 250 }).percent, 100);
  assert.equal(normalizeUpload({ stage: { name: 5 } }).stage, null);
  assert.equal(normalizeUpload(null).state, 'starting');
});

test('nginx\'s answers are read: JSON, the default output, JSONP', () => {
  const nginx = { state: 'uploading', received: 10, size: 20 };
  assert.deepEqual(parseReport('{ "state" : "uploading", "received" : 10, "size" : 20 }\r\n'), nginx);
  assert.deepEqual(parseReport("new Object({ 'state' : 'uploading', 'received' : 10, 'size' : 20 })\r\n"), nginx);
  assert.deepEqual(parseReport('progress({ "state" : "uploading", "received" : 10, "size" : 20 });'), nginx);
  assert.equal(normalizeUpload(nginx).percent, 50);
  assert.equal(normalizeUpload({ state: 'done' }).percent, 100);
  assert.throws(() => parseReport('<p>{"state": "done"}</p>'), SyntaxError);
});

test('a long answer that is almost nginx\'s output is refused without backtracking', () => {
  // Parsed in a child process bounded in time: a regular expression that
  // backtracks holds the event loop, where no test timeout can fire.
  const script = `
    import { parseReport } from ${JSON.stringify(new URL('../../pyramid_upload_progress/static/upload-progress.js', import.meta.url).href)};
    const spaces = ' '.repeat(600000);
    const outcome = (body) => { try { return parseReport(body); } catch (error) { return error.name; } };
    console.log(JSON.stringify([outcome('progress({ "state" : "done" })' + spaces + 'x'),
                                outcome('progress(' + spaces + 'x'),
                                outcome('progress({ "state" : "done" })' + spaces + ';' + spaces)]));`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script],
                          { encoding: 'utf8', timeout: 20000 });
  assert.equal(child.signal, null, 'the parse did not end within 20 s');
  assert.deepEqual(JSON.parse(child.stdout), ['SyntaxError', 'SyntaxError', { state: 'done' }]);
});

test('listUploads() normalizes the listing and rejects a refusal', async () => {
  let status = 200;
  new FakeServer(() => ({ status, body: { uploads: [record({ id: 'a', received: 'x' })] } }));
  const [only] = await listUploads();
  assert.deepEqual([only.id, only.received], ['a', 0]);
  status = 403;
  await assert.rejects(listUploads(), { name: 'ReportError', status: 403 });
});

test('the classic script defines one global, the module exports the same names', () => {
  assert.deepEqual(Object.keys(globalThis.UploadProgress).sort(), Object.keys(client).sort());
  for (const name of Object.keys(client)) assert.equal(client[name], globalThis.UploadProgress[name]);
});

test('upload-progress.d.ts declares exactly the exported names', () => {
  const dts = readFileSync(new URL('../../pyramid_upload_progress/static/upload-progress.d.ts', import.meta.url), 'utf8');
  const declared = [...dts.matchAll(/^export (?:declare )?(?:function|class) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual(declared.sort(), Object.keys(client).sort());
});
