"""A complete app: one page that uploads a file with the shipped JavaScript
client and draws its progress, and the view that takes the upload.

Run it with any server that shows progress, for example
``gunicorn --worker-class gthread --threads 8 'upload_page:main({})'``
from this folder. ``tests/test_docs.py`` imports it and drives it.
"""
from pyramid.config import Configurator
from pyramid.response import Response


def form(request):
    client = request.static_url('pyramid_upload_progress:static/upload-progress.js')
    return Response(PAGE.replace('CLIENT_URL', client))


def receive(request):
    size = 0
    for chunk in iter(lambda: request.body_file.read(65536), b''):
        size += len(chunk)  # write it somewhere: never read it whole
    return Response(json={'received': size})


def main(global_config, **settings):
    with Configurator(settings=settings) as config:
        config.include('pyramid_upload_progress')
        config.add_route('form', '/')
        config.add_view(form, route_name='form')
        config.add_route('upload', '/upload')
        config.add_view(receive, route_name='upload', request_method='POST')
        return config.make_wsgi_app()


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>Upload</title>
<input type="file" id="file">
<button id="send">Upload</button> <button id="cancel" disabled>Cancel</button>
<progress id="bar" max="100"></progress> <span id="status"></span>
<ul id="files"></ul>
<script type="module">
import { upload } from 'CLIENT_URL';

const $ = (id) => document.getElementById(id);
$('send').onclick = () => {
  const file = $('file').files[0];
  if (!file) return;
  const sending = upload('/upload', file, {
    // headers: {'X-CSRF-Token': token},  // where your app checks CSRF
    onProgress(up, {sent, total, buffering}) {
      if (up.percent == null) $('bar').removeAttribute('value');
      else $('bar').value = up.percent;
      $('status').textContent = `${up.state}: the server has ${up.received} of `
        + `${up.size ?? '?'} bytes, the browser sent ${sent} of ${total}`
        + (up.stage ? `; the server is at "${up.stage.name}"` : '')
        + (buffering ? '; something in front of the app is buffering the upload' : '');
      // Per-file progress of a FormData body, when the server gives it.
      $('files').replaceChildren(...(up.files ?? []).map((f) => {
        const li = document.createElement('li');
        li.textContent = `${f.filename}: ${f.received} bytes${f.done ? ', done' : ''}`;
        return li;
      }));
    },
  });
  $('cancel').disabled = false;
  $('cancel').onclick = () => sending.cancel();
  sending.done.then(
    (response) => { $('status').textContent = response.ok ? 'stored' : `refused: ${response.status}`; },
    (error) => { $('status').textContent = error.name === 'AbortError' ? 'cancelled' : error.message; },
  ).finally(() => { $('cancel').disabled = true; });
};
</script>
"""
