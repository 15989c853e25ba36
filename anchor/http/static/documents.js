// coldtrail: check a file the reader holds against the documents behind this lot.
//
// The documents' entries come from the lot's proof bundle (subject.documents), each
// signed by the log key and attested with the subject; verify.js checks the bundle and
// shows the result above. The file never leaves the device: its SHA-256 is computed
// here (WebCrypto, or the vendored @noble/hashes on a plain-HTTP page) and compared with
// the registered digests; a file that is not registered but shares chunks with one is
// named with the byte ranges that differ (proofs/documents.py check_file, the same rule:
// chunks of the entry's chunk_size, each hashed as an RFC 6962 leaf, SHA-256(0x00 || chunk)).

const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");

async function sha256Function() {
  if (globalThis.crypto && crypto.subtle) {
    return async (data) => new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  }
  const sha2 = await import("./vendor/noble-hashes-2.4.0/sha2.js");
  return async (data) => sha2.sha256(data);
}

async function leafHashes(sha256, data, chunkSize) {
  const out = [];
  for (let i = 0; i < Math.max(data.length, 1); i += chunkSize) {
    const chunk = data.subarray(i, i + chunkSize);
    const leaf = new Uint8Array(chunk.length + 1);
    leaf.set(chunk, 1);
    out.push(hex(await sha256(leaf)));
  }
  return out;
}

// The same outcome as proofs.documents.check_file: the registered document the file
// is, or the one it most resembles with the byte ranges [start, end) that differ.
export async function checkFile(sha256, data, documents) {
  const digest = hex(await sha256(data));
  let best = null;
  for (const d of documents) {
    const e = d.entry;
    if (e.digest === digest) return { ok: true, entry: e, size: data.length, differs: [] };
    const mine = await leafHashes(sha256, data, e.chunk_size);
    let same = 0;
    for (let i = 0; i < Math.min(mine.length, d.chunks.length); i++) if (mine[i] === d.chunks[i]) same++;
    const score = same * 2 + (data.length === e.size ? 1 : 0);
    if (score > 0 && (best === null || score > best.score)) best = { score, d, mine };
  }
  if (best === null) return { ok: false, entry: null, size: data.length, differs: [] };
  const { d, mine } = best;
  const e = d.entry;
  const ranges = [];
  for (let i = 0; i < Math.max(mine.length, d.chunks.length); i++) {
    if (i < mine.length && i < d.chunks.length && mine[i] === d.chunks[i]) continue;
    const start = i * e.chunk_size;
    const end = Math.min((i + 1) * e.chunk_size, Math.max(e.size, data.length));
    if (ranges.length && ranges[ranges.length - 1][1] === start) ranges[ranges.length - 1][1] = end;
    else ranges.push([start, end]);
  }
  return { ok: false, entry: e, size: data.length, differs: ranges };
}

const LABELS = {
  calibration: "calibration certificate",
  "recorder-class": "EN 12830 recorder class",
  mapping: "temperature-mapping report",
  inspection: "inspection report",
  analysis: "certificate of analysis",
  other: "document",
};

export function sentence(result) {
  const e = result.entry;
  if (e === null) return "This file matches no document behind this lot.";
  const what = `${LABELS[e.type] || "document"} “${e.name}” for ${e.subject_kind} ${e.subject}, issued by ${e.issuer}`;
  if (result.ok) return `This file is the registered ${what}.`;
  const where = result.differs.slice(0, 5).map(([a, b]) => `bytes ${a}–${b - 1}`).join(", ");
  const more = result.differs.length > 5 ? ` and ${result.differs.length - 5} more range(s)` : "";
  const size = result.size !== e.size ? `; it is ${result.size} bytes, the registered file ${e.size}` : "";
  return `This file is NOT the registered ${what}: ${where}${more} differ${size}.`;
}

async function main() {
  const input = document.getElementById("doc-file");
  const out = document.getElementById("doc-result");
  const mark = document.getElementById("verify");
  if (!input || !out || !mark) return;
  let documents = null;
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    out.dataset.state = "checking";
    out.textContent = "Checking…";
    try {
      if (documents === null) {
        const resp = await fetch(mark.dataset.bundle, { credentials: "omit" });
        if (!resp.ok) throw new Error(`the bundle could not be fetched (${resp.status})`);
        const bundle = await resp.json();
        documents = (bundle.subject && bundle.subject.documents) || [];
      }
      if (file.size > 20 * 1024 * 1024) throw new Error("the file is larger than any registered document can be");
      const data = new Uint8Array(await file.arrayBuffer());
      const result = await checkFile(await sha256Function(), data, documents);
      const trusted = mark.dataset.state === "verified"
        ? " (checked against the entries of the bundle verified above)"
        : " (the bundle itself is not verified on this page: see above)";
      out.dataset.state = result.ok ? "ok" : "differs";
      out.textContent = sentence(result) + trusted;
    } catch (err) {
      out.dataset.state = "error";
      out.textContent = `The file could not be checked: ${err.message}`;
    }
  });
}

main();
