// The ES-module face of the browser client of pyramid_upload_progress: the
// code is upload-progress.global.js (a classic script that defines the
// global `UploadProgress`); this imports it and exports the same names.
import './upload-progress.global.js';

export const {
  upload, watch, listUploads, watchUploads, newUploadId, normalizeUpload, parseReport, UploadError,
} = globalThis.UploadProgress;
