// filegate's upload page: plain browser JavaScript, no build step, no framework.
//
// Flow: POST /api/v1/media/sign-upload → PUT the bytes straight to the presigned URL with
// XMLHttpRequest (for real upload progress) → POST /api/v1/media/{id}/confirm (the row
// records what storage really holds) → refresh GET /api/v1/media. A download signs
// a URL with POST /api/v1/media/{id}/sign-download and navigates to it.
"use strict";

(() => {
  const TOKEN_KEY = "filegate.token";
  const PAGE_SIZE = 50;
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

  async function uploadOne(file) {
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
        await uploadOne(file);
        done += 1;
        const name = files.length === 1 ? file.name : `${done} of ${files.length} files`;
        view.status(`Upload complete: ${name} (100 %).`, done === files.length ? "done" : "uploading");
      }
    } catch (err) {
      view.status(`Upload failed${done ? ` after ${done} of ${files.length} files` : ""}.`, "failed");
      view.error(err);
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
    fileList.reload();
  }

  init();
})();
