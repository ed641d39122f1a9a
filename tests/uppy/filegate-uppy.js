// Glue between Uppy's @uppy/aws-s3 (5.x callbacks) and filegate's presign-only routes
// (docs/CLIENTS.md shows this file). Every storage request is signed by filegate; the
// bytes go straight from the browser to storage.
import AwsS3 from "@uppy/aws-s3";

const MiB = 1024 * 1024;

/** filegate's default part plan: 8 MiB, raised a MiB at a time until there are ≤ 10 000 parts. */
export function filegatePartSize(size) {
  let partSize = 8 * MiB;
  while (Math.ceil(size / partSize) > 10000) partSize += MiB;
  return partSize;
}

/**
 * Installs AwsS3 on `uppy` with filegate's routes. `api` is filegate's origin, `token()` the
 * caller's JWT. Files from `multipartThreshold` bytes up go in parts of `partSize(size)` bytes,
 * `limit` requests at a time.
 */
export function useFilegate(uppy, { api, token, multipartThreshold = 64 * MiB, partSize = filegatePartSize, limit = 4 }) {
  async function call(method, path, body, signal) {
    const res = await fetch(api + path, {
      method,
      signal,
      headers: { Authorization: `Bearer ${token()}`, ...(body && { "Content-Type": "application/json" }) },
      body: body && JSON.stringify(body),
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new Error(`${res.status} ${data?.code ?? ""}: ${data?.error ?? res.statusText}`);
    return data;
  }
  const type = (file) => file.type || "application/octet-stream";
  const ids = new Map(); // S3 uploadId → filegate id (med_…)
  const singles = new Map(); // Uppy file id → filegate id of a single PUT, confirmed after it
  const signed = new Map(); // "id:partNumber" → promise of a signed part, batches of 8

  // Content-Length is signed, but browsers set it themselves (and refuse it from scripts).
  const put = ({ url, headers }) => {
    const { "Content-Length": _, ...rest } = headers;
    return { method: "PUT", url, headers: rest };
  };

  uppy.use(AwsS3, {
    limit,
    shouldUseMultipart: (file) => file.size >= multipartThreshold,
    getChunkSize: (file) => partSize(file.size),

    async getUploadParameters(file, { signal }) {
      const s = await call("POST", "/api/v1/media/sign-upload", { filename: file.name, contentType: type(file), size: file.size }, signal);
      singles.set(file.id, s.id);
      return put({ url: s.uploadUrl, headers: s.headers });
    },

    async createMultipartUpload(file) {
      const u = await call("POST", "/api/v1/media/multipart", {
        filename: file.name, contentType: type(file), size: file.size, partSize: partSize(file.size),
      });
      ids.set(u.uploadId, { id: u.id, partCount: u.partCount });
      return { uploadId: u.uploadId, key: u.key };
    },

    async signPart(file, { uploadId, partNumber, signal }) {
      const { id, partCount } = ids.get(uploadId);
      if (!signed.has(`${id}:${partNumber}`)) {
        const batch = [];
        for (let n = partNumber; n <= Math.min(partNumber + 7, partCount); n += 1) {
          if (!signed.has(`${id}:${n}`)) batch.push(n);
        }
        const req = call("POST", `/api/v1/media/${id}/parts`, { partNumbers: batch }, signal);
        for (const n of batch) {
          signed.set(`${id}:${n}`, req.then((r) => r.parts.find((p) => p.partNumber === n)));
        }
      }
      // One use each: a retried part gets a fresh URL.
      const part = signed.get(`${id}:${partNumber}`);
      signed.delete(`${id}:${partNumber}`);
      return put(await part);
    },

    async listParts(file, { uploadId, signal }) {
      const { parts } = await call("GET", `/api/v1/media/${ids.get(uploadId).id}/parts`, undefined, signal);
      return parts.map((p) => ({ PartNumber: p.partNumber, Size: p.size, ETag: p.etag }));
    },

    async completeMultipartUpload(file, { uploadId, parts, signal }) {
      const row = await call("POST", `/api/v1/media/${ids.get(uploadId).id}/complete`, {
        parts: parts.map((p) => ({ partNumber: p.PartNumber, etag: p.ETag })),
      }, signal);
      ids.delete(uploadId);
      return { filegate: row }; // the confirmed media row
    },

    async abortMultipartUpload(file, { uploadId, signal }) {
      await call("DELETE", `/api/v1/media/${ids.get(uploadId).id}/multipart`, undefined, signal);
      ids.delete(uploadId);
    },
  });

  // A single PUT is confirmed once storage has it (multipart's complete already confirmed).
  uppy.addPostProcessor(async (fileIDs) => {
    for (const fileID of fileIDs) {
      const id = singles.get(fileID);
      if (!id) continue;
      singles.delete(fileID);
      const row = await call("POST", `/api/v1/media/${id}/confirm`);
      uppy.setFileState(fileID, { response: { ...uppy.getFile(fileID).response, body: { filegate: row } } });
    }
  });
}
