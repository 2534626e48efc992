// Types of the browser client of pyramid_upload_progress (upload-progress.js
// as an ES module; as a classic script, the global `UploadProgress`).

export as namespace UploadProgress;

/** The nginx module's states. */
export type UploadState = 'starting' | 'uploading' | 'done' | 'error';

/** A file part of a multipart/form-data body. */
export interface FileProgress {
  field: string | null;
  filename: string | null;
  received: number;
  done: boolean;
}

/** What the application says it does with the body once it is in. */
export interface Stage {
  name: string;
  done: number | null;
  total: number | null;
}

/** An UPLOAD from the report view, every field present and of its type. */
export interface Upload {
  id: string | null;
  state: UploadState;
  received: number;
  size: number | null;
  percent: number | null;
  rate: number | null;
  eta: number | null;
  started: number | null;
  finished: number | null;
  path: string | null;
  status: number | null;
  cancelled: boolean;
  files: FileProgress[] | null;
  stage: Stage | null;
}

/** The browser's own count of the body sent. */
export interface Transfer {
  sent: number;
  total: number | null;
  /** `sent` as a share of `total`, 0–100; null while the total is unknown. */
  percent: number | null;
  /** The server has not seen the body while the browser sent much of it. */
  buffering: boolean;
}

/** The options every call takes. */
export interface ReportOptions {
  progressUrl?: string | URL;
  idParam?: string;
  headers?: Record<string, string>;
  credentials?: RequestCredentials;
  interval?: number;
  maxInterval?: number;
  timeout?: number;
}

export interface UploadOptions extends ReportOptions {
  id?: string;
  method?: string;
  bufferingDelay?: number;
  bufferingRatio?: number;
  finalPolls?: number;
  onProgress?: (upload: Upload, transfer: Transfer) => void;
}

export interface WatchOptions extends ReportOptions {
  onProgress?: (upload: Upload) => void;
}

/** The server's answer to the upload itself. */
export interface UploadResponse {
  status: number;
  ok: boolean;
  text: string;
  json: unknown;
  upload: Upload;
}

export interface Sending {
  id: string;
  done: Promise<UploadResponse>;
  cancel(): Promise<boolean>;
}

export interface Watching {
  id: string;
  done: Promise<Upload>;
  stop(): void;
  cancel(): Promise<boolean>;
}

export interface WatchingUploads {
  /** Never resolves: rejects on a 4xx ('ReportError') and on stop() ('AbortError'). */
  done: Promise<never>;
  stop(): void;
}

export declare class UploadError extends Error {
  name: 'AbortError' | 'NetworkError' | 'ReportError';
  /** The last UPLOAD seen, if any. */
  upload: Upload | null;
  /** The report view's status, for a 'ReportError'. */
  status: number | null;
  constructor(name: string, message: string, upload?: Upload | null, status?: number | null);
}

export declare function upload(url: string | URL, body: FormData | Blob, options?: UploadOptions): Sending;
export declare function watch(id: string, options?: WatchOptions): Watching;
export declare function listUploads(options?: ReportOptions): Promise<Upload[]>;
export declare function watchUploads(onUpdate: (uploads: Upload[]) => void, options?: ReportOptions): WatchingUploads;
export declare function newUploadId(): string;
export declare function normalizeUpload(raw: unknown, id?: string | null): Upload;
export declare function parseReport(body: string): Record<string, unknown>;
