// coldtrail in-browser verifier.
//
// Fetches the page's proof bundle (coldtrail-bundle/1, see proofs/bundle.py) and checks,
// with no help from the server: the checkpoint's signed note (C2SP signed-note, Ed25519
// key ids) and its tlog-cosignature/v1 cosignatures, every manifest's signature and its
// RFC 6962 inclusion in the checkpointed log, every record's signature and inclusion in
// its batch root, and the bundle's summary. Then it compares the values the page shows
// (elements with data-claim) with the verified records, so a value changed anywhere
// between the ledger and the screen turns the mark red.
//
// Crypto comes from WebCrypto (Ed25519 + SHA-256), which browsers offer only in a secure
// context (HTTPS, or http://localhost / 127.0.0.1); elsewhere (a phone on plain-HTTP LAN)
// from the pinned pure-JS @noble libraries vendored under /static/vendor/. The mark
// always says which one it used.

const STEP_LABELS = {
  packing: "Packed", loading: "Loaded", unloading: "Unloaded", receiving: "Received",
  shipping: "Shipped", storing: "Stored", inspecting: "Inspected",
};
// anchor/provenance/answer.py _LABELS: the verdict in words.
const VERDICT_LABELS = {
  pass: "Kept within its profile", fail: "Out of its profile",
  indeterminate: "Not enough evidence to say",
};
import { RULES_VERSION, lotVerdict, profileFromDict, profileToDict, sameVerdict } from "./coldchain.js";

const SUBJECT_AIS = { gtin: "01", lot: "10", serial: "21", sscc: "00" };
const utf8 = new TextEncoder();

class VerifyError extends Error {}

function fail(message) {
  throw new VerifyError(message);
}

function fromB64(text) {
  if (typeof text !== "string") fail("expected base64 text");
  let bin;
  try {
    bin = atob(text);
  } catch {
    fail("invalid base64");
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function fromHex(text) {
  if (!/^([0-9a-f]{2})*$/.test(text)) fail("invalid hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
  return out;
}

function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function same(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// RFC 8785: JSON.stringify already serialises numbers and strings the JCS way; object
// keys are sorted by UTF-16 code units, which is what Array.prototype.sort does.
export function jcs(value) {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) fail("non-finite number");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return "[" + value.map(jcs).join(",") + "]";
  const keys = Object.keys(value).sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + jcs(value[k])).join(",") + "}";
}

async function webCryptoBackend() {
  if (!globalThis.isSecureContext || !globalThis.crypto || !crypto.subtle) return null;
  try {
    // Ed25519 landed in WebCrypto late; probe it once with a valid public key.
    const rfc8032Key = fromHex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    await crypto.subtle.importKey("raw", rfc8032Key, { name: "Ed25519" }, false, ["verify"]);
  } catch {
    return null;
  }
  const keys = new Map();
  return {
    name: "WebCrypto (this browser's built-in Ed25519 and SHA-256)",
    async sha256(data) {
      return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    },
    async verify(publicKey, signature, message) {
      const id = toHex(publicKey);
      let key = keys.get(id);
      if (!key) {
        key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
        keys.set(id, key);
      }
      if (signature.length !== 64) return false;
      return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
    },
  };
}

// Plain-HTTP pages (a phone on the LAN) have no WebCrypto: fall back to the vendored,
// pinned pure-JS implementations served by the anchor itself (anchor/http/static/vendor/,
// docs/adr/0403). Strict RFC 8032 verification (zip215: false), as OpenSSL does.
export async function pureJsBackend() {
  try {
    const [ed, sha2] = await Promise.all([
      import("./vendor/noble-ed25519-3.2.0/index.js"),
      import("./vendor/noble-hashes-2.4.0/sha2.js"),
    ]);
    ed.hashes.sha512 = sha2.sha512;
    return {
      name: "the anchor's bundled JavaScript verifier (@noble/ed25519 3.2.0, " +
        "@noble/hashes 2.4.0), as this connection offers no WebCrypto",
      async sha256(data) {
        return sha2.sha256(data);
      },
      async verify(publicKey, signature, message) {
        try {
          return ed.verify(signature, message, publicKey, { zip215: false });
        } catch {
          return false;
        }
      },
    };
  } catch {
    return null;
  }
}

// --- RFC 6962 ------------------------------------------------------------------------

async function leafHash(C, data) {
  return C.sha256(concat(new Uint8Array([0]), data));
}

async function nodeHash(C, left, right) {
  return C.sha256(concat(new Uint8Array([1]), left, right));
}

// RFC 9162 section 2.1.3.2, with integer halving that stays exact beyond 2^31.
async function verifyInclusion(C, leaf, index, size, proof, root, where) {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
    fail(`${where}: leaf index ${index} is outside a tree of size ${size}`);
  }
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (p.length !== 32) fail(`${where}: a proof hash is not 32 bytes`);
    if (sn === 0) fail(`${where}: inclusion proof is too long`);
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(C, p, r);
      if (fn % 2 === 0) {
        while (fn !== 0 && fn % 2 === 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(C, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) fail(`${where}: inclusion proof is too short`);
  if (!same(r, root)) fail(`${where}: inclusion proof does not lead to the root`);
}

// --- C2SP signed notes, checkpoints, cosignatures -------------------------------------------

async function parseVkey(C, vkey) {
  const parts = String(vkey).trim().split("+");
  if (parts.length < 3) fail("a verifier key is name+hexid+base64");
  const [name, hexId] = parts;
  const material = fromB64(parts.slice(2).join("+"));
  if (material.length !== 33 || hexId.length !== 8) fail("malformed verifier key");
  const alg = material[0];
  const publicKey = material.slice(1);
  const keyId = (await C.sha256(concat(utf8.encode(name + "\n"), material))).slice(0, 4);
  if (toHex(keyId) !== hexId) fail(`verifier key id of ${name} does not match its key`);
  return { name, alg, publicKey, keyId };
}

function parseNote(text) {
  if (typeof text !== "string") fail("the checkpoint is not text");
  for (const ch of text) {
    if (ch < " " && ch !== "\n") fail("the checkpoint note has control characters");
  }
  const sep = text.lastIndexOf("\n\n");
  if (sep < 0) fail("the checkpoint note has no signature block");
  const body = text.slice(0, sep + 1);
  const block = text.slice(sep + 2);
  if (!block.endsWith("\n")) fail("the checkpoint note does not end with a newline");
  const signatures = block.slice(0, -1).split("\n").map((line) => {
    if (!line.startsWith("\u2014 ")) fail("a signature line starts with an em dash");
    const fields = line.slice(2).split(" ");
    if (fields.length !== 2) fail("a signature line is '\u2014 name base64'");
    const payload = fromB64(fields[1]);
    if (payload.length < 5) fail("a note signature is too short");
    return { name: fields[0], keyId: payload.slice(0, 4), sig: payload.slice(4) };
  });
  return { body, signatures };
}

function parseCheckpoint(body) {
  const lines = body.slice(0, -1).split("\n");
  if (lines.length < 3) fail("a checkpoint has origin, size and root lines");
  if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) fail("checkpoint size is not a decimal");
  const size = Number(lines[1]);
  if (!Number.isSafeInteger(size)) fail("checkpoint size is too large for this verifier");
  const root = fromB64(lines[2]);
  if (root.length !== 32) fail("checkpoint root is not 32 bytes");
  return { origin: lines[0], size, root };
}

function cosignedMessage(timestamp, body) {
  return utf8.encode(`cosignature/v1\ntime ${timestamp}\n${body}`);
}

function withoutSig(obj) {
  const { sig, ...body } = obj;
  return [body, sig];
}

// --- the bundle ------------------------------------------------------------------------------

export async function verifyBundle(C, bundle, pinnedLogVkey) {
  if (!bundle || bundle.format !== "coldtrail-bundle/1") fail("not a coldtrail-bundle/1");
  const log = bundle.log || {};
  if (pinnedLogVkey && log.vkey !== pinnedLogVkey) {
    fail("the bundle names another log key than this anchor's");
  }
  const logKey = await parseVkey(C, log.vkey);
  if (logKey.alg !== 0x01) fail("the log key is not an Ed25519 (0x01) key");
  const cosigners = await Promise.all((log.cosigners || []).map((v) => parseVkey(C, v)));
  if (cosigners.some((c) => c.alg !== 0x04)) fail("cosigner keys must be type 0x04 keys");
  const quorum = Number.isInteger(log.quorum) ? log.quorum : fail("log quorum is missing");

  const note = parseNote(bundle.checkpoint);
  const checkpoint = parseCheckpoint(note.body);
  let logSigned = false;
  const cosigned = new Set();
  for (const s of note.signatures) {
    if (s.name === logKey.name && same(s.keyId, logKey.keyId)) {
      if (!(await C.verify(logKey.publicKey, s.sig, utf8.encode(note.body)))) {
        fail("the checkpoint's log signature does not verify");
      }
      logSigned = true;
    }
    for (const c of cosigners) {
      if (s.name !== c.name || !same(s.keyId, c.keyId)) continue;
      if (s.sig.length !== 72) fail(`cosignature by ${c.name} is not 8 + 64 bytes`);
      const timestamp = new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0);
      if (!(await C.verify(c.publicKey, s.sig.slice(8), cosignedMessage(timestamp, note.body)))) {
        fail(`cosignature by ${c.name} does not verify`);
      }
      cosigned.add(c.name);
    }
  }
  if (!logSigned) fail("the checkpoint is not signed by the log key");
  if (checkpoint.origin !== logKey.name) fail("the checkpoint is for another log");
  if (cosigned.size < quorum) {
    fail(`the checkpoint has ${cosigned.size} of the ${quorum} cosignatures its policy needs`);
  }

  const batches = Array.isArray(bundle.batches) ? bundle.batches : fail("no batches");
  if (batches.length === 0) fail("the bundle proves no batch");
  const records = [];
  const leaves = [];
  // A batch or record repeated would inflate the counts shown: refused, as proofs/bundle.py does.
  const seen = new Set();
  const once = (key, message) => {
    if (seen.has(key)) fail(message);
    seen.add(key);
  };
  for (const [bi, b] of batches.entries()) {
    const where = `batch ${bi}`;
    const manifest = b.manifest;
    once(`batch\u0000${manifest.gw}\u0000${manifest.batch_seq}`,
      `${where}: batch ${manifest.batch_seq} of ${manifest.gw} appears twice`);
    once(`leaf\u0000${b.leaf_index}`, `${where}: log leaf ${b.leaf_index} is proven twice`);
    const publicKey = fromB64((bundle.gateways || {})[manifest.gw]);
    if (publicKey.length !== 32) fail(`${where}: no key for gateway ${manifest.gw}`);
    if (toHex(await C.sha256(publicKey)).slice(0, 16) !== manifest.key) {
      fail(`${where}: the manifest names another gateway key`);
    }
    const [body, sig] = withoutSig(manifest);
    if (!(await C.verify(publicKey, fromB64(sig), utf8.encode(jcs(body))))) {
      fail(`${where}: the manifest signature of ${manifest.gw} does not verify`);
    }
    const manifestLeaf = await leafHash(C, utf8.encode(jcs(manifest)));
    await verifyInclusion(C, manifestLeaf, b.leaf_index, checkpoint.size,
      b.log_proof.map(fromB64), checkpoint.root, `${where} in the log`);
    const batchRoot = fromHex(manifest.root);
    for (const [ri, entry] of b.records.entries()) {
      const rwhere = `${where} record ${ri}`;
      const record = entry.record;
      if (record.gw !== manifest.gw || record.seq < manifest.first_seq || record.seq > manifest.last_seq) {
        fail(`${rwhere}: not in this batch`);
      }
      if (entry.index !== record.seq - manifest.first_seq) fail(`${rwhere}: index does not match seq`);
      const [rbody, rsig] = withoutSig(record);
      if (!(await C.verify(publicKey, fromB64(rsig), utf8.encode(jcs(rbody))))) {
        fail(`${rwhere}: the signature of ${record.gw} #${record.seq} does not verify`);
      }
      const leaf = await leafHash(C, utf8.encode(jcs(record)));
      once(`record\u0000${record.gw}\u0000${record.seq}`,
        `${rwhere}: record ${record.gw} #${record.seq} appears twice`);
      once(`hash\u0000${toHex(leaf)}`, `${rwhere}: record ${record.gw} #${record.seq} appears twice`);
      await verifyInclusion(C, leaf, entry.index, manifest.count, entry.proof.map(fromB64),
        batchRoot, rwhere);
      records.push(record);
      leaves.push(leaf);
    }
  }
  checkSummary(bundle.summary, records);
  checkSubject(bundle.subject || {}, records);
  await checkAttestation(C, bundle, logKey, leaves);
  return { records, checkpoint, cosigned: cosigned.size, quorum, batches: batches.length };
}

function checkSummary(claimed, records) {
  if (claimed === undefined) return;
  const perQ = {};
  let gaps = 0;
  for (const r of records) {
    if (r.type === "gap") gaps += 1;
    if (r.type !== "reading") continue;
    const agg = (perQ[r.q] ||= { unit: r.unit, count: 0, min: Infinity, max: -Infinity });
    agg.count += 1;
    agg.min = Math.min(agg.min, r.val);
    agg.max = Math.max(agg.max, r.val);
  }
  const claimedQ = (claimed && claimed.quantities) || {};
  const names = new Set([...Object.keys(perQ), ...Object.keys(claimedQ)]);
  for (const q of names) {
    const a = perQ[q];
    const c = claimedQ[q];
    if (!a || !c || a.unit !== c.unit || a.count !== c.count || a.min !== c.min || a.max !== c.max) {
      fail(`the bundle's summary of ${q} does not match its records`);
    }
  }
  if (claimed.gaps !== gaps) fail("the bundle's gap count does not match its records");
}

function checkSubject(subject, records) {
  const wanted = Object.entries(SUBJECT_AIS).filter(([k]) => k in subject)
    .map(([k, ai]) => [ai, subject[k]]);
  if (wanted.length === 0) return;
  const named = records.some((r) => r.type === "scan" && wanted.every(([ai, v]) => r.gs1[ai] === v));
  if (!named) fail("no signed scan in the bundle names the bundle's subject");
}

async function checkAttestation(C, bundle, logKey, leaves) {
  // The subject's claims beyond GS1 keys (range, verdict) are the anchor's word: they
  // must carry the log key's signature, as proofs/bundle.py checks offline. Version 2
  // also signs which records are proven (SHA-256 over their sorted leaf hashes), version 3
  // the log's cosigners and quorum too.
  const subject = bundle.subject || {};
  const claims = Object.keys(subject).filter((k) => !(k in SUBJECT_AIS));
  if (bundle.attestation === undefined) {
    if (claims.length) fail("the subject's claims are not attested by the log key");
    if (bundle.attestation_format !== undefined) fail("an attestation format without an attestation");
    return;
  }
  const format = bundle.attestation_format === undefined ?
    "coldtrail-attestation/v1" : bundle.attestation_format;
  const body = {
    subject,
    summary: bundle.summary === undefined ? null : bundle.summary,
    checkpoint: bundle.checkpoint === undefined ? null : bundle.checkpoint,
  };
  if (format === "coldtrail-attestation/v2" || format === "coldtrail-attestation/v3") {
    const sorted = leaves.map(toHex).sort().map(fromHex);
    body.proven = {
      batches: bundle.batches.length,
      records: leaves.length,
      leaves: toHex(await C.sha256(concat(...sorted))),
    };
    if (format === "coldtrail-attestation/v3") {
      // v3 also signs the log's trust statement and the policy changes carried.
      body.log = bundle.log === undefined ? null : bundle.log;
      body.policy_changes = bundle.policy_changes === undefined ? [] : bundle.policy_changes;
    }
  } else if (format !== "coldtrail-attestation/v1") {
    fail(`unknown attestation format ${format}`);
  }
  const message = concat(utf8.encode(`${format}\n`), utf8.encode(jcs(body)));
  if (!(await C.verify(logKey.publicKey, fromB64(bundle.attestation), message))) {
    fail("the attestation is not signed by the log key");
  }
}

// --- what the page shows ------------------------------------------------------------------

function fmtTime(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())} UTC`;
}

function holderOf(r) {
  return r.asset || (r.type === "scan" && r.rp) || r.gw;
}

function text(el, selector) {
  const node = selector ? el.querySelector(selector) : el;
  return node ? node.textContent.trim() : null;
}

// Shown numbers are rounded to 2 decimals; compare within that rounding.
function sameShown(shown, actual) {
  const n = Number(shown);
  return shown !== "" && Number.isFinite(n) && Math.abs(n - actual) <= 0.005 + 1e-9;
}

// --- the verdict, recomputed (proofs/bundle.py check_verdict, with coldchain.js) --------

const TO_CELSIUS = { CEL: [1, 0], FAH: [5 / 9, -32 * 5 / 9], KEL: [1, -273.15] };

function celsius(value, unit) {
  const scale = TO_CELSIUS[unit];
  if (!scale) return null;
  return unit === "CEL" ? value : value * scale[0] + scale[1];
}

async function sensorIdOf(C, gw, src) {
  const name = `${gw}/${src}`;
  if (name.length <= 128) return name;
  return `${gw.slice(0, 80)}/${toHex(await C.sha256(utf8.encode(src))).slice(0, 32)}`;
}

// The claimed verdict must follow from the proven readings: recomputed in full when the
// bundle proves every reading it rests on (complete), else checked for what a sample
// settles (a proven reading beyond what the profile allows makes anything but fail a lie).
// Returns a sentence for the mark, or throws.
export async function checkVerdict(C, subject, records) {
  const claim = subject.verdict;
  if (claim === undefined || claim === null) return null;
  if (typeof claim !== "object") fail("the bundle's verdict is from an older anchor");
  let profile;
  try {
    profile = profileFromDict(subject.profile);
  } catch (e) {
    fail(`the bundle's profile: ${e.message}`);
  }
  const digest = toHex(await C.sha256(utf8.encode(jcs(profileToDict(profile)))));
  if (!claim.profile || claim.profile.digest !== digest) fail("the verdict names another profile than the one the bundle carries");
  if (claim.rules !== RULES_VERSION) fail(`the verdict was made under rules ${claim.rules}; this page knows ${RULES_VERSION}`);
  if (!Array.isArray(claim.legs) || !Array.isArray(claim.notes)) fail("the claimed verdict is malformed");
  const legs = claim.legs.map((leg) => {
    const v = leg && leg.verdict;
    const custody = v && v.custody;
    if (!custody || !Number.isInteger(custody.start_ms) || !Number.isInteger(custody.end_ms) ||
      typeof leg.holder !== "string" || !Array.isArray(v.sensors)) fail("a leg of the claimed verdict is malformed");
    return { holder: leg.holder, start_ms: custody.start_ms, end_ms: custody.end_ms,
      sensors: new Set(v.sensors.map((s) => s.sensor)), readings: {} };
  });
  for (const r of records) {
    if (r.type !== "reading" || r.q !== "temperature") continue;
    const value = celsius(r.val, r.unit);
    if (value === null) continue;
    const sid = await sensorIdOf(C, r.gw, r.src);
    for (const leg of legs) {
      if (!(leg.start_ms <= r.t && r.t < leg.end_ms)) continue;
      if (leg.sensors.has(sid)) (leg.readings[sid] ||= []).push([r.t, value]);
      else if (r.asset === leg.holder) fail(`a proven reading of ${sid} at ${leg.holder} is left out of the verdict`);
    }
  }
  const notes = claim.notes;
  if (!notes.every((n) => n && typeof n.code === "string" && typeof n.status === "string")) fail("a note of the claimed verdict is malformed");
  if (notes.some((n) => n.status === "fail")) fail("a note of the verdict is 'fail'");
  if (claim.complete !== true) {
    const low = profile.allowed_low_c ?? profile.low_c, high = profile.allowed_high_c ?? profile.high_c;
    const beyond = legs.some((leg) => Object.values(leg.readings).some((rs) => rs.some(([, v]) =>
      (low !== null && v < low) || (high !== null && v > high))));
    if (beyond && claim.status !== "fail") fail(`a proven reading is beyond what the profile allows, yet the verdict is ${claim.status}`);
    if (claim.status === "pass" && notes.some((n) => n.status !== "pass")) fail("a verdict with an indeterminate note cannot pass");
    return "checked against the sample of readings it proves";
  }
  let mine;
  try {
    mine = lotVerdict(legs, profile,
      notes.filter((n) => n.code !== "custody-gap" && n.code !== "no-custody")
        .map((n) => ({ code: n.code, status: n.status, sensor: n.sensor ?? null, message: n.message })),
      digest);
  } catch (e) {
    fail(`the verdict cannot be recomputed: ${e.message}`);
  }
  const claimed = { ...claim };
  delete claimed.complete;
  delete claimed.readings;
  const diff = sameVerdict(mine, claimed);
  if (diff) fail(`the signed verdict does not follow from the proven readings: recomputed ${mine.status}, claimed ${claim.status} (first difference at ${diff})`);
  return `recomputed here from the ${claim.readings} proven readings`;
}

// proofs/coldchain.py LotVerdict.mkt_c: the worst MKT window of any sensor in any leg.
export function verdictMkt(verdict) {
  let worst = null;
  for (const leg of verdict.legs || []) {
    for (const s of (leg.verdict && leg.verdict.sensors) || []) {
      const m = s.mkt_max_window_c;
      if (typeof m === "number" && (worst === null || m > worst)) worst = m;
    }
  }
  return worst;
}

// LotVerdict.time_out_of_range_ms: per leg the sensor out of range longest, summed.
export function verdictTimeOut(verdict) {
  let total = 0;
  for (const leg of verdict.legs || []) {
    let most = 0;
    for (const s of (leg.verdict && leg.verdict.sensors) || []) {
      most = Math.max(most, s.time_above_ms + s.time_below_ms);
    }
    total += most;
  }
  return total;
}

// Python's round(): halves go to the even neighbour.
function roundHalfEven(x) {
  const f = Math.floor(x);
  const d = x - f;
  if (d !== 0.5) return d > 0.5 ? f + 1 : f;
  return f % 2 === 0 ? f : f + 1;
}

// anchor/http/pages.py fmt_duration.
export function fmtDuration(ms) {
  const minutes = roundHalfEven(ms / 60000);
  return minutes >= 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${minutes} min`;
}

export function checkClaims(doc, records, verdict = null) {
  const byKey = new Map(records.map((r) => [`${r.gw}\u0000${r.seq}`, r]));
  const scans = records.filter((r) => r.type === "scan");
  const readings = records.filter((r) => r.type === "reading");
  const subject = {};
  for (const el of doc.querySelectorAll("[data-claim]")) {
    const ai = SUBJECT_AIS[el.dataset.claim];
    if (ai) subject[ai] = text(el);
  }
  const namesSubject = (s) => Object.entries(subject).every(([ai, v]) => s.gs1[ai] === v);
  const values = (q) => readings.filter((r) => r.q === q).map((r) => r.val);
  const mismatches = [];
  let checked = 0;
  for (const el of doc.querySelectorAll("[data-claim]")) {
    const kind = el.dataset.claim;
    let ok = false;
    if (SUBJECT_AIS[kind]) {
      ok = scans.some(namesSubject);
    } else if (kind === "custody") {
      const r = byKey.get(`${el.dataset.gw}\u0000${el.dataset.seq}`);
      const time = el.querySelector("time");
      ok = Boolean(r && r.type === "scan" && namesSubject(r) &&
        text(el, ".step-name") === STEP_LABELS[r.step] &&
        text(el, ".holder") === holderOf(r) &&
        time && time.textContent.trim() === fmtTime(r.t) &&
        Date.parse(time.getAttribute("datetime")) === r.t);
    } else if (kind === "min" || kind === "max") {
      const vals = values(el.dataset.q);
      ok = vals.length > 0 &&
        sameShown(text(el), kind === "min" ? Math.min(...vals) : Math.max(...vals));
    } else if (kind === "verdict") {
      // The verdict is the log key's attested word (checkAttestation), recomputed by
      // coldtrail-verify from the records; the page must say what it says.
      const status = verdict && verdict.status;
      ok = Boolean(status) && el.dataset.status === status && text(el) === VERDICT_LABELS[status];
    } else if (kind === "mkt") {
      const mkt = verdict && verdictMkt(verdict);
      ok = mkt !== null && mkt !== undefined && sameShown(text(el).replace(/\s*°C$/, ""), mkt);
    } else if (kind === "time-out") {
      ok = Boolean(verdict) && text(el) === fmtDuration(verdictTimeOut(verdict));
    }
    el.classList.remove("checked", "mismatch");
    el.classList.add(ok ? "checked" : "mismatch");
    if (ok) checked += 1;
    else mismatches.push(kind);
  }
  return { checked, mismatches };
}

// --- the mark --------------------------------------------------------------------------------

function show(mark, state, title, detail) {
  mark.classList.remove("mark-pending", "mark-verified", "mark-failed", "mark-unavailable");
  mark.classList.add(`mark-${state}`);
  mark.dataset.state = state;
  mark.querySelector("#verify-title").textContent = title;
  mark.querySelector("#verify-detail").textContent = detail;
}

async function main() {
  const mark = document.getElementById("verify");
  if (!mark) return;
  const C = (await webCryptoBackend()) || (await pureJsBackend());
  if (!C) {
    show(mark, "unavailable", "Cannot verify here",
      "This browser can neither use WebCrypto Ed25519 here nor load the bundled verifier. " +
      "Open the page over HTTPS, or download the proof bundle below and run coldtrail-verify.");
    return;
  }
  try {
    const response = await fetch(mark.dataset.bundle, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      let detail = `the anchor answered ${response.status}`;
      try {
        detail = (await response.json()).detail || detail;
      } catch {
        // keep the status line
      }
      show(mark, "unavailable", "No proof yet", detail);
      return;
    }
    const bundle = await response.json();
    const result = await verifyBundle(C, bundle, mark.dataset.logVkey);
    const subject = bundle.subject || {};
    const verdict = subject.verdict && typeof subject.verdict === "object" ? subject.verdict : null;
    const recomputed = await checkVerdict(C, subject, result.records);
    const claims = checkClaims(document, result.records, verdict);
    if (claims.mismatches.length > 0) {
      fail(`${claims.mismatches.length} value(s) on this page do not match the signed records ` +
        `(${[...new Set(claims.mismatches)].join(", ")})`);
    }
    if (claims.checked === 0) fail("nothing on this page could be checked");
    show(mark, "verified", "Verified",
      `Checked in this browser with ${C.name}: ${result.records.length} signed records in ` +
      `${result.batches} batches, included in checkpoint ${result.checkpoint.size} of ` +
      `${result.checkpoint.origin}, cosigned by ${result.cosigned} (policy: ${result.quorum}). ` +
      `${claims.checked} values on this page match them.` +
      (recomputed ? ` The verdict was ${recomputed}.` : ""));
  } catch (e) {
    const reason = e instanceof VerifyError ? e.message : `verification failed: ${e}`;
    show(mark, "failed", "NOT verified", `Checked with ${C.name}: ${reason}.`);
  }
}

// Loaded as a module by Node (tests) there is no page to check.
if (typeof document !== "undefined") main();
