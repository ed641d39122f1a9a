// The test page: Uppy with filegate's glue. Query: api (filegate's origin), token,
// multipartThreshold and partSize (bytes). The outcome lands in document.body.dataset and
// window.filegateResults for tests/e2e/uppy.rs.
import Uppy from "@uppy/core";
import { useFilegate } from "./filegate-uppy.js";

const q = new URLSearchParams(location.search);
const partSize = Number(q.get("partSize")) || undefined;
const uppy = new Uppy({ autoProceed: false });
useFilegate(uppy, {
  api: q.get("api"),
  token: () => q.get("token"),
  multipartThreshold: Number(q.get("multipartThreshold")),
  ...(partSize && { partSize: () => partSize }),
});

// Which route started each file's upload, for the test: the multipart create or sign-upload.
const multipart = new Set();
const fetch0 = window.fetch;
window.fetch = (url, init) => {
  if (String(url).endsWith("/api/v1/media/multipart")) multipart.add(JSON.parse(init.body).filename);
  return fetch0(url, init);
};
uppy.on("upload-error", (file, error) => {
  document.body.dataset.error = `${file?.name}: ${error?.message}`;
});

document.getElementById("files").addEventListener("change", async (e) => {
  document.body.dataset.state = "uploading";
  try {
    for (const file of e.target.files) uppy.addFile({ name: file.name, type: file.type, data: file });
    const result = await uppy.upload();
    window.filegateResults = result.successful.map((f) => ({
      name: f.name,
      size: f.size,
      multipart: multipart.has(f.name),
      id: f.response?.body?.filegate?.id ?? null,
      status: f.response?.body?.filegate?.status ?? null,
    }));
    document.body.dataset.state = result.failed.length ? "failed" : "done";
  } catch (err) {
    document.body.dataset.error = String(err?.message ?? err);
    document.body.dataset.state = "failed";
  }
});
document.body.dataset.state = "ready";
