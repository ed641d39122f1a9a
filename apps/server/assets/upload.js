// filegate's upload page: plain browser JavaScript, no build step, no framework.
//
// Flow: POST /api/v1/media/sign-upload → PUT the bytes straight to the presigned URL with
// XMLHttpRequest (for real upload progress) → POST /api/v1/media/{id}/confirm (the row
// records what storage really holds) → refresh GET /api/v1/media. A download signs
// a URL with POST /api/v1/media/{id}/sign-download and navigates to it.
//
// Files from MULTIPART_THRESHOLD up go in parts instead: POST /api/v1/media/multipart →
// POST /api/v1/media/{id}/parts (part URLs, signed in batches as the workers need them) →
// PARALLEL_PARTS PUTs at a time → POST /api/v1/media/{id}/complete. The upload's id is kept
// in localStorage until it completes: after a reload, choosing the same file again asks
// GET /api/v1/media/{id}/parts what storage holds and sends only the missing parts.
//
// Query parameters for tests and trials: `multipartThreshold` and `partSize` (bytes), and
// `pauseAfterParts` (stop after sending that many parts, as if the tab had been closed).
"use strict";

(() => {
  const TOKEN_KEY = "filegate.token";
  const UPLOADS_KEY = "filegate.multipart";
  const PAGE_SIZE = 50;
  const params = new URLSearchParams(location.search);
  const positive = (name) => {
    const n = Number(params.get(name));
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  };
  const MULTIPART_THRESHOLD = positive("multipartThreshold") ?? 64 * 1024 * 1024;
  /** Part size asked of the API; without one the server picks (8 MiB, more for huge files). */
  const PART_SIZE = positive("partSize");
  const PAUSE_AFTER_PARTS = positive("pauseAfterParts");
  const PARALLEL_PARTS = 4;
  /** Part URLs signed per request: enough to keep the workers busy, few enough not to expire. */
  const SIGN_BATCH = 2 * PARALLEL_PARTS;
  /** Attempts per part before the upload stops (it stays resumable). */
  const PART_ATTEMPTS = 3;
  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- errors

  /** An API answer other than 2xx; carries the error envelope's fields when there is one. */
  class ApiError extends Error {
    constructor(status, envelope, fallback) {
      super((envelope && envelope.error) || fallback || `HTTP ${status}`);
      this.status = status;
      this.code = (envelope && envelope.code) || null;
      this.hint = (envelope && envelope.hint) || null;
      this.requestId = (envelope && envelope.requestId) || null;
    }
  }

  /** The direct PUT/GET to storage failed; `status` 0 means the browser got no readable answer. */
  class StorageError extends Error {
    constructor(message, { status = 0, code = null, hint = null } = {}) {
      super(message);
      this.status = status;
      this.code = code;
      this.hint = hint;
    }
  }

  // ---------------------------------------------------------------- token

  const token = {
    get() {
      try {
        return (localStorage.getItem(TOKEN_KEY) || "").trim();
      } catch {
        return "";
      }
    },
    set(value) {
      try {
        if (value) localStorage.setItem(TOKEN_KEY, value);
        else localStorage.removeItem(TOKEN_KEY);
      } catch {
        // Storage disabled: the token lives as long as the page.
      }
    },
  };

  // ---------------------------------------------------------------- API client

  async function request(method, path, body) {
    const headers = { Accept: "application/json" };
    const jwt = token.get();
    if (jwt) headers.Authorization = `Bearer ${jwt}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        // Without a token, the Better Auth session cookie authenticates.
        credentials: jwt ? "same-origin" : "include",
      });
    } catch (e) {
      throw new ApiError(0, null, `Cannot reach the filegate API (${e.message})`);
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) throw new ApiError(res.status, data, text.slice(0, 200));
    return data;
  }

  const api = {
    signUpload: (file) =>
      request("POST", "/api/v1/media/sign-upload", {
        filename: file.name,
        contentType: file.type || "application/octet-stream",
        size: file.size,
      }),
    confirm: (id) => request("POST", `/api/v1/media/${encodeURIComponent(id)}/confirm`),
    signDownload: (id, filename) =>
      request("POST", `/api/v1/media/${encodeURIComponent(id)}/sign-download`, {
        downloadFilename: filename,
      }),
    list: (cursor) =>
      request(
        "GET",
        `/api/v1/media?limit=${PAGE_SIZE}` + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""),
      ),
    // When managed mode lands: remove: (id) => request("DELETE", `/api/v1/media/${encodeURIComponent(id)}`),
    createMultipart: (file) =>
      request("POST", "/api/v1/media/multipart", {
        filename: file.name,
        contentType: file.type || "application/octet-stream",
        size: file.size,
        ...(PART_SIZE ? { partSize: PART_SIZE } : {}),
      }),
    signParts: (id, partNumbers) =>
      request("POST", `/api/v1/media/${encodeURIComponent(id)}/parts`, { partNumbers }),
    listParts: (id) => request("GET", `/api/v1/media/${encodeURIComponent(id)}/parts`),
    completeMultipart: (id, parts) =>
      request("POST", `/api/v1/media/${encodeURIComponent(id)}/complete`, { parts }),
    abortMultipart: (id) => request("DELETE", `/api/v1/media/${encodeURIComponent(id)}/multipart`),
  };

  // ---------------------------------------------------------------- unfinished multipart uploads

  /** The same file again: its name, size and modification time (a File cannot outlive a reload). */
  const fingerprint = (file) => `${file.name}\u0000${file.size}\u0000${file.lastModified}`;

  /** Multipart uploads started in this browser and not completed yet, by file fingerprint. */
  const unfinished = {
    all() {
      try {
        const v = JSON.parse(localStorage.getItem(UPLOADS_KEY) || "{}");
        return v && typeof v === "object" ? v : {};
      } catch {
        return {};
      }
    },
    save(all) {
      try {
        if (Object.keys(all).length) localStorage.setItem(UPLOADS_KEY, JSON.stringify(all));
        else localStorage.removeItem(UPLOADS_KEY);
      } catch {
        // Storage disabled: the upload cannot resume after a reload, it still completes.
      }
    },
    get(file) {
      return this.all()[fingerprint(file)] || null;
    },
    put(file, upload) {
      const all = this.all();
      all[fingerprint(file)] = upload;
      this.save(all);
    },
    remove(fp) {
      const all = this.all();
      delete all[fp];
      this.save(all);
    },
  };

  // ---------------------------------------------------------------- storage

  /** The `<Code>` and `<Message>` of an S3 XML error body, when readable. */
  function s3Error(xml) {
    try {
      const doc = new DOMParser().parseFromString(xml, "application/xml");
      const pick = (tag) => doc.getElementsByTagName(tag)[0]?.textContent || null;
      return { code: pick("Code"), message: pick("Message") };
    } catch {
      return { code: null, message: null };
    }
  }

  function corsHint(url) {
    return (
      `Storage (${new URL(url).origin}) must allow this page's origin (${location.origin}) for PUT: ` +
      "add it to FILEGATE_CORS_ORIGINS for the embedded endpoint, or to the bucket's CORS rule on R2."
    );
  }

  /**
   * PUTs `file` to the presigned URL, replaying the signed headers except Content-Length,
   * which the browser sets itself. Resolves with the ETag storage answered.
   */
  function putToStorage(signed, file, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(signed.method || "PUT", signed.uploadUrl);
      for (const [name, value] of Object.entries(signed.headers || {})) {
        if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value);
      }
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onProgress(e.loaded, e.total);
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          resolve({ etag: xhr.getResponseHeader("ETag") });
          return;
        }
        const { code, message } = s3Error(xhr.responseText || "");
        reject(
          new StorageError(`Upload to storage failed: ${message || xhr.statusText || "refused"}`, {
            status: xhr.status,
            code,
          }),
        );
      };
      xhr.onerror = () =>
        reject(
          new StorageError(
            "Upload to storage failed: the browser could not send the file. " +
              "Storage was unreachable or refused this page's origin (CORS).",
            { hint: corsHint(signed.uploadUrl) },
          ),
        );
      xhr.ontimeout = () => reject(new StorageError("Upload to storage failed: it timed out."));
      xhr.onabort = () => reject(new StorageError("Upload to storage was cancelled."));
      xhr.send(file);
    });
  }

  /**
   * Sends `file` as the multipart upload `upload`; when `resuming` one found in localStorage,
   * first asks storage which parts it holds. PUTs the others, PARALLEL_PARTS at a time. Resolves with the
   * part list for complete, or null when paused by `pauseAfterParts`.
   */
  async function putParts(upload, file, onProgress, report, resuming) {
    const { partSize, partCount } = upload;
    const sizeOf = (n) => (n < partCount ? partSize : file.size - (partCount - 1) * partSize);
    const etags = new Map();
    // A part storage holds in full is not sent again.
    const held = resuming ? (await api.listParts(upload.id)).parts || [] : [];
    for (const p of held) {
      if (p.partNumber >= 1 && p.partNumber <= partCount && p.size === sizeOf(p.partNumber) && p.etag) {
        etags.set(p.partNumber, p.etag);
      }
    }
    report.resumed = [...etags.keys()].sort((a, b) => a - b);
    let missing = [];
    for (let n = 1; n <= partCount; n += 1) if (!etags.has(n)) missing.push(n);
    if (PAUSE_AFTER_PARTS !== null) missing = missing.slice(0, PAUSE_AFTER_PARTS);

    const done = report.resumed.reduce((sum, n) => sum + sizeOf(n), 0);
    let sent = 0;
    const inFlight = new Map();
    const progress = () => {
      let loaded = done + sent;
      for (const v of inFlight.values()) loaded += v;
      onProgress(loaded, file.size);
    };
    progress();

    // Part URLs, signed in batches ahead of the workers (each is valid for a few minutes).
    const urls = new Map();
    let signing = null;
    const queue = [...missing];
    async function urlFor(n, fresh) {
      if (fresh) urls.delete(n);
      while (!urls.has(n)) {
        if (!signing) {
          const batch = [n, ...queue.filter((m) => !urls.has(m) && m !== n).slice(0, SIGN_BATCH - 1)];
          signing = api.signParts(upload.id, batch).then((r) => {
            for (const part of r.parts || []) urls.set(part.partNumber, part);
          }).finally(() => {
            signing = null;
          });
        }
        await signing;
      }
      return urls.get(n);
    }

    async function sendPart(n) {
      const blob = file.slice((n - 1) * partSize, (n - 1) * partSize + sizeOf(n));
      for (let attempt = 1; ; attempt += 1) {
        const signed = await urlFor(n, attempt > 1);
        try {
          const { etag } = await putToStorage({ ...signed, uploadUrl: signed.url }, blob, (loaded) => {
            inFlight.set(n, loaded);
            progress();
          });
          if (!etag) {
            throw new StorageError("Upload to storage failed: storage did not expose the part's ETag (CORS).", {
              hint: corsHint(signed.url),
            });
          }
          return etag;
        } catch (err) {
          inFlight.delete(n);
          // An error status (an expired URL, a 5xx) is retried with a fresh URL; no readable
          // answer (network, CORS) or a hidden ETag stops the upload, which stays resumable.
          if (attempt >= PART_ATTEMPTS || err.hint) throw err;
        }
      }
    }

    async function worker() {
      while (queue.length) {
        const n = queue.shift();
        let etag;
        try {
          etag = await sendPart(n);
        } catch (err) {
          queue.length = 0; // the other workers finish their part and stop
          throw err;
        }
        etags.set(n, etag);
        inFlight.delete(n);
        sent += sizeOf(n);
        report.uploaded.push(n);
        progress();
      }
    }
    const workers = Array.from({ length: Math.min(PARALLEL_PARTS, queue.length) }, worker);
    const results = await Promise.allSettled(workers);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    if (etags.size < partCount) return null;
    return [...etags.entries()].sort(([a], [b]) => a - b).map(([partNumber, etag]) => ({ partNumber, etag }));
  }

  // ---------------------------------------------------------------- formatting

  function formatBytes(n) {
    if (typeof n !== "number") return "–";
    if (n < 1024) return `${n} B`;
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let v = n / 1024;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  }

  function formatDate(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  // ---------------------------------------------------------------- status, errors, progress

  const view = {
    status(text, state = "") {
      $("status").textContent = text;
      $("status").dataset.state = state;
    },
    error(err) {
      const box = $("error");
      box.replaceChildren();
      const title = document.createElement("strong");
      title.textContent = err.message || String(err);
      box.append(title);
      const meta = [err.code, err.status ? `HTTP ${err.status}` : null].filter(Boolean).join(" · ");
      if (meta) {
        const code = document.createElement("span");
        code.className = "code";
        code.textContent = ` (${meta})`;
        box.append(code);
      }
      let hint = err.hint;
      if (err instanceof ApiError && err.status === 401) {
        hint = (hint ? `${hint}. ` : "") + "Paste a token above, or sign in to your app first.";
      }
      for (const line of [hint, err.requestId ? `Request id: ${err.requestId}` : null]) {
        if (!line) continue;
        const p = document.createElement("p");
        p.textContent = line;
        box.append(p);
      }
      box.hidden = false;
    },
    clearError() {
      $("error").hidden = true;
      $("error").replaceChildren();
    },
    progress(loaded, total) {
      const bar = $("upload-progress");
      const percent = total > 0 ? Math.round((loaded / total) * 100) : 100;
      bar.value = percent;
      bar.dataset.events = String(Number(bar.dataset.events || 0) + 1);
      $("progress-label").textContent = `${percent} %`;
    },
    /** Storage confirmed the upload (some browsers report no progress for tiny bodies). */
    complete() {
      $("upload-progress").value = 100;
      $("progress-label").textContent = "100 %";
    },
    resetProgress() {
      const bar = $("upload-progress");
      bar.value = 0;
      bar.dataset.events = "0";
      $("progress-label").textContent = "0 %";
    },
  };

  // ---------------------------------------------------------------- uploads

  let busy = false;

  async function uploadMultipart(file) {
    view.resetProgress();
    const report = { resumed: [], uploaded: [] };
    const status = $("status");
    let upload = unfinished.get(file);
    const resuming = upload !== null;
    if (resuming) {
      view.status(`Resuming ${file.name}…`, "signing");
    } else {
      view.status(`Preparing ${file.name} (multipart)…`, "signing");
      const created = await api.createMultipart(file);
      upload = {
        id: created.id,
        uploadId: created.uploadId,
        key: created.key,
        partSize: created.partSize,
        partCount: created.partCount,
        filename: file.name,
        size: file.size,
        startedAt: new Date().toISOString(),
      };
      unfinished.put(file, upload);
    }
    status.dataset.uploadId = upload.id;
    view.status(
      `Uploading ${file.name} (${formatBytes(file.size)}, ${upload.partCount} parts, ${PARALLEL_PARTS} at a time)…`,
      "uploading",
    );
    let parts;
    try {
      parts = await putParts(upload, file, (loaded, total) => view.progress(loaded, total), report, resuming);
    } catch (err) {
      // Gone at the server (aborted, purged, completed elsewhere): start over next time.
      if (err instanceof ApiError && err.status === 404) unfinished.remove(fingerprint(file));
      throw err;
    } finally {
      status.dataset.resumedParts = report.resumed.join(",");
      status.dataset.uploadedParts = [...report.uploaded].sort((a, b) => a - b).join(",");
    }
    if (!parts) return { paused: true };
    view.status(`Completing ${file.name}…`, "confirming");
    const row = await api.completeMultipart(upload.id, parts);
    unfinished.remove(fingerprint(file));
    showUnfinished();
    view.complete();
    return row;
  }

  async function uploadOne(file) {
    if (file.size >= MULTIPART_THRESHOLD) return uploadMultipart(file);
    view.resetProgress();
    view.status(`Preparing ${file.name}…`, "signing");
    const signed = await api.signUpload(file);
    view.status(`Uploading ${file.name} (${formatBytes(file.size)})…`, "uploading");
    const { etag } = await putToStorage(signed, file, (loaded, total) => view.progress(loaded, total));
    view.status(`Confirming ${file.name}…`, "confirming");
    await api.confirm(signed.id);
    view.complete();
    $("status").dataset.etag = etag || "";
    return signed;
  }

  async function uploadFiles(files) {
    if (busy || files.length === 0) return;
    busy = true;
    $("file-input").disabled = true;
    view.clearError();
    let done = 0;
    try {
      for (const file of files) {
        const result = await uploadOne(file);
        if (result.paused) {
          view.status(`Upload paused: ${file.name}. Choose the same file again to resume.`, "paused");
          showUnfinished();
          break;
        }
        done += 1;
        const name = files.length === 1 ? file.name : `${done} of ${files.length} files`;
        view.status(`Upload complete: ${name} (100 %).`, done === files.length ? "done" : "uploading");
      }
    } catch (err) {
      view.status(`Upload failed${done ? ` after ${done} of ${files.length} files` : ""}.`, "failed");
      view.error(err);
      showUnfinished();
    } finally {
      busy = false;
      $("file-input").disabled = false;
      $("file-input").value = "";
    }
    await fileList.reload();
  }

  // ---------------------------------------------------------------- file list

  /** One button per row and action; add `{ label: "Delete", run: removeFile }` here later. */
  const rowActions = [{ label: "Download", className: "download", run: downloadFile }];

  async function downloadFile(item, button) {
    view.clearError();
    button.disabled = true;
    try {
      const signed = await api.signDownload(item.id, item.filename);
      button.dataset.url = signed.url;
      view.status(`Download started: ${item.filename}.`, "downloading");
      // Storage answers with Content-Disposition: attachment, so the page stays.
      window.location.assign(signed.url);
    } catch (err) {
      view.error(err);
    } finally {
      button.disabled = false;
    }
  }

  function renderRow(item) {
    const tr = document.createElement("tr");
    tr.dataset.id = item.id;
    const cell = (text, className) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (className) td.className = className;
      tr.append(td);
      return td;
    };
    cell(item.filename, "name").title = item.key;
    cell(formatBytes(item.size), "num");
    cell(item.contentType, "type");
    const when = document.createElement("time");
    when.dateTime = item.createdAt;
    when.textContent = formatDate(item.createdAt);
    cell("").append(when);
    const actions = cell("", "actions");
    for (const action of rowActions) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = `link ${action.className}`;
      button.dataset.id = item.id;
      button.textContent = action.label;
      button.setAttribute("aria-label", `${action.label} ${item.filename}`);
      button.addEventListener("click", () => action.run(item, button, tr));
      actions.append(button);
    }
    return tr;
  }

  const fileList = {
    cursor: null,
    async load(append) {
      try {
        const page = await api.list(append ? this.cursor : null);
        const rows = $("file-rows");
        if (!append) rows.replaceChildren();
        for (const item of page.items || []) rows.append(renderRow(item));
        this.cursor = page.nextCursor || null;
        $("load-more").hidden = !this.cursor;
        $("files-empty").hidden = rows.children.length > 0;
        $("files").dataset.loaded = "true";
      } catch (err) {
        view.error(err);
      }
    },
    reload() {
      return this.load(false);
    },
  };

  // ---------------------------------------------------------------- resumable uploads

  /** Lists the multipart uploads this browser left unfinished, each with a Discard button. */
  function showUnfinished() {
    const box = $("unfinished");
    const list = $("unfinished-list");
    list.replaceChildren();
    for (const [fp, upload] of Object.entries(unfinished.all())) {
      const li = document.createElement("li");
      li.dataset.id = upload.id;
      const text = document.createElement("span");
      text.textContent = `${upload.filename} (${formatBytes(upload.size)}, ${upload.partCount} parts)`;
      const discard = document.createElement("button");
      discard.type = "button";
      discard.className = "link discard";
      discard.textContent = "Discard";
      discard.setAttribute("aria-label", `Discard the unfinished upload of ${upload.filename}`);
      discard.addEventListener("click", async () => {
        discard.disabled = true;
        try {
          await api.abortMultipart(upload.id);
        } catch (err) {
          // Already gone at the server: forgetting it here is all that is left to do.
          if (!(err instanceof ApiError && err.status === 404)) {
            view.error(err);
            discard.disabled = false;
            return;
          }
        }
        unfinished.remove(fp);
        showUnfinished();
      });
      li.append(text, " ", discard);
      list.append(li);
    }
    box.hidden = list.children.length === 0;
  }

  // ---------------------------------------------------------------- wiring

  function showTokenState() {
    $("token-state").textContent = token.get() ? "Token saved in this browser." : "No token: using your session.";
  }

  function init() {
    $("token").value = token.get();
    showTokenState();
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      token.set($("token").value.trim());
      showTokenState();
      view.clearError();
      fileList.reload();
    });
    $("token-forget").addEventListener("click", () => {
      token.set("");
      $("token").value = "";
      showTokenState();
      fileList.reload();
    });

    $("file-input").addEventListener("change", (e) => uploadFiles([...e.target.files]));
    const zone = $("drop-zone");
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (e) => {
        e.preventDefault();
        zone.classList.add("over");
      });
    }
    for (const type of ["dragleave", "drop"]) {
      zone.addEventListener(type, () => zone.classList.remove("over"));
    }
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      uploadFiles([...(e.dataTransfer?.files || [])]);
    });

    $("refresh").addEventListener("click", () => fileList.reload());
    $("load-more").addEventListener("click", () => fileList.load(true));
    showUnfinished();
    fileList.reload();
  }

  init();
})();
