// coldtrail: the cold-chain verdict engine in JavaScript, a port of proofs/coldchain.py
// (rules "coldtrail-coldchain/1", docs/verdicts.md), so that the consumer page recomputes
// a lot's verdict from the readings its bundle proves, as coldtrail-verify does.
//
// It runs the shared vectors (tests/vectors/coldchain/) in the browser tests and must
// agree with the Python on every one: codes, statuses, sensors, times, counts and flags
// exactly; floats to within 1e-9 (exp and log may differ in the last bit between
// libraries). Sentences are for people and may differ slightly: they are not compared.
//
// The model (proofs/coldchain.py has the long form): each reading holds until the next
// one; a spacing of more than 2 × the sampling interval is a gap, across which nothing is
// interpolated (the reading before it holds one interval); only readings taken while the
// lot was held count.

export const RULES_VERSION = "coldtrail-coldchain/1";
const ACTIVATION_ENERGY_K = 10000.0;
const KELVIN = 273.15;
const GAP_FACTOR = 2;
const MAX_TIME_MS = 2 ** 53 - 1;
const MINUTE_MS = 60000;
export const HANDOVER_GAP_MS = 30 * MINUTE_MS;
export const LONE_READING_INTERVAL_MS = 15 * MINUTE_MS;
const STATUS_RANK = { pass: 0, indeterminate: 1, fail: 2 };
const PROFILE_TYPE = "coldchain-profile";
const PROFILE_KINDS = ["controlled-cold", "controlled-room", "frozen", "custom"];
const DISPOSITION_KINDS = ["release", "quarantine", "reject", "needs-review"];
const PROFILE_KEYS = new Set(["type", "v", "name", "version", "kind", "low_c", "high_c",
  "allowed_low_c", "allowed_high_c", "mkt_limit_c", "mkt_window_ms", "dispositions"]);
const PROFILE_REQUIRED = ["type", "v", "name", "version", "kind", "low_c", "high_c"];
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/;

export class FormatError extends Error {
  constructor(message, code) {
    super(`${message} [${code}]`);
    this.code = code;
  }
}

function fail(message, code) {
  throw new FormatError(message, code);
}

const isInt = (x) => typeof x === "number" && Number.isInteger(x);

function checkTime(t, what = "a sample time") {
  if (!isInt(t) || t < -MAX_TIME_MS || t > MAX_TIME_MS) {
    fail(`${what} must be an integer number of milliseconds within ±(2^53 - 1)`, "sample-bad-time");
  }
  return t;
}

function checkValue(v) {
  if (typeof v !== "number") fail("a sample value must be a number", "sample-not-a-number");
  if (!Number.isFinite(v)) fail(`a sample value must be finite, not ${v}`, "sample-not-finite");
  if (v <= -KELVIN) fail(`${v} °C is at or below absolute zero`, "sample-below-absolute-zero");
  return v;
}

function checkInterval(ms) {
  if (!isInt(ms) || ms <= 0 || ms > MAX_TIME_MS) {
    fail("a sampling interval must be a positive integer number of milliseconds", "bad-interval");
  }
  return ms;
}

function checkOrder(times) {
  for (let i = 1; i < times.length; i++) {
    if (times[i] === times[i - 1]) fail(`two samples share the time ${times[i]} ms`, "samples-duplicate-time");
    if (times[i] < times[i - 1]) fail("samples are not in time order", "samples-unsorted");
  }
}

function checkBound(value, what) {
  if (value === null || value === undefined) return null;
  if (typeof value !== "number") fail(`${what} must be a number or null`, "bad-range");
  if (!Number.isFinite(value) || value <= -KELVIN) fail(`${what} must be finite and above absolute zero`, "bad-range");
  return value;
}

function checkIdentifier(value, what) {
  if (typeof value !== "string" || !ID_RE.test(value)) fail(`${what} is not an identifier`, "bad-identifier");
  return value;
}

function medianSpacing(times) {
  if (times.length < 2) fail("the sampling interval cannot be learned from fewer than two samples", "interval-unknown");
  const spacings = [];
  for (let i = 1; i < times.length; i++) spacings.push(times[i] - times[i - 1]);
  spacings.sort((a, b) => a - b);
  return spacings[Math.floor((spacings.length - 1) / 2)];
}

// --- profiles -----------------------------------------------------------------------------

// A profile from its log entry's JSON, checked as Profile.from_dict and Profile() are.
export function profileFromDict(d) {
  if (d === null || typeof d !== "object" || Array.isArray(d)) fail("a profile is a JSON object", "profile-malformed");
  const keys = Object.keys(d);
  if (!PROFILE_REQUIRED.every((k) => k in d) || !keys.every((k) => PROFILE_KEYS.has(k))) {
    fail("a profile's keys", "profile-malformed");
  }
  if (d.type !== PROFILE_TYPE || d.v !== 1) fail(`not a ${PROFILE_TYPE} v1`, "profile-malformed");
  const p = {
    name: checkIdentifier(d.name, "a profile name"), version: d.version, kind: d.kind,
    low_c: d.low_c, high_c: d.high_c, allowed_low_c: d.allowed_low_c ?? null,
    allowed_high_c: d.allowed_high_c ?? null, mkt_limit_c: d.mkt_limit_c ?? null,
    mkt_window_ms: d.mkt_window_ms ?? null, dispositions: d.dispositions ?? null,
  };
  if (p.dispositions !== null) {
    if (typeof p.dispositions !== "object" || Array.isArray(p.dispositions) ||
      !Object.entries(p.dispositions).every(([k, v]) => k in STATUS_RANK && DISPOSITION_KINDS.includes(v))) {
      fail(`profile ${p.name}: dispositions`, "profile-bad-dispositions");
    }
  }
  if (!isInt(p.version) || p.version < 1 || p.version > MAX_TIME_MS) fail("a profile version is a positive integer", "profile-bad-version");
  if (!PROFILE_KINDS.includes(p.kind)) fail("a profile kind", "profile-bad-kind");
  let low, high, aLow, aHigh;
  try {
    low = checkBound(p.low_c, "the low bound");
    high = checkBound(p.high_c, "the high bound");
    if (low !== null && high !== null && !(low < high)) fail(`the range ${low}..${high} °C is empty`, "bad-range");
    aLow = checkBound(p.allowed_low_c, "the allowed low bound");
    aHigh = checkBound(p.allowed_high_c, "the allowed high bound");
  } catch (e) {
    if (e instanceof FormatError) fail(`profile ${p.name}: ${e.message}`, "profile-bad-range");
    throw e;
  }
  if (low === null && high === null) fail(`profile ${p.name} bounds neither side`, "profile-bad-range");
  if (aLow !== null && (low === null || aLow > low)) fail("the allowed low bound must be at or below the range's", "profile-bad-band");
  if (aHigh !== null && (high === null || aHigh < high)) fail("the allowed high bound must be at or above the range's", "profile-bad-band");
  try {
    checkBound(p.mkt_limit_c, "the MKT limit");
  } catch (e) {
    if (e instanceof FormatError) fail(`profile ${p.name}: ${e.message}`, "profile-bad-mkt");
    throw e;
  }
  if (p.mkt_window_ms !== null) {
    try {
      checkInterval(p.mkt_window_ms);
    } catch (e) {
      if (e instanceof FormatError) fail("the MKT window is a positive number of ms", "profile-bad-mkt");
      throw e;
    }
  }
  return p;
}

// Profile.to_dict(): what the digest is over (dispositions only when set).
export function profileToDict(p) {
  const out = {
    type: PROFILE_TYPE, v: 1, name: p.name, version: p.version, kind: p.kind, low_c: p.low_c,
    high_c: p.high_c, allowed_low_c: p.allowed_low_c, allowed_high_c: p.allowed_high_c,
    mkt_limit_c: p.mkt_limit_c, mkt_window_ms: p.mkt_window_ms,
  };
  if (p.dispositions !== null) out.dispositions = p.dispositions;
  return out;
}

// --- one sensor's path --------------------------------------------------------------------

function bisectLeft(a, x) {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

function bisectRight(a, x) {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x < a[mid]) hi = mid; else lo = mid + 1;
  }
  return lo;
}

function mktFromRatio(scale, ratio) {
  return ACTIVATION_ENERGY_K / (scale - Math.log(ratio)) - KELVIN;
}

function excursion(side, start, end, peak, dmCms, readings, gapBefore, gapAfter = false) {
  return {
    side: side === 1 ? "above" : "below", start_ms: start, end_ms: end, duration_ms: end - start,
    peak_c: peak, degree_minutes: dmCms / MINUTE_MS, readings, gap_before: gapBefore, gap_after: gapAfter,
  };
}

// _walk: everything but the MKT windows, in one pass over the readings in the custody.
function walk(times, values, interval, start, end, low, high, allowedLow, allowedHigh) {
  const i0 = bisectLeft(times, start), i1 = bisectLeft(times, end);
  const ts = times.slice(i0, i1), vs = values.slice(i0, i1);
  const n = ts.length;
  const gaps = [];
  if (n === 0) {
    return { starts: [], weights: [], xs: [], scale: 0, gaps: [{ start_ms: start, end_ms: end }],
      covered: 0, min: null, max: null, mean: null, mkt: null, above: 0, below: 0,
      aboveAllowed: 0, belowAllowed: 0, dmAbove: 0, dmBelow: 0, excursions: [] };
  }
  const gapLimit = GAP_FACTOR * interval;
  const hi = high === null ? Infinity : high;
  const lo = low === null ? -Infinity : low;
  const ahi = allowedHigh === null ? hi : allowedHigh;
  const alo = allowedLow === null ? lo : allowedLow;
  const k = ACTIVATION_ENERGY_K;
  let vmax = -Infinity, vmin = Infinity;
  for (const v of vs) {
    if (v > vmax) vmax = v;
    if (v < vmin) vmin = v;
  }
  const scale = k / (vmax + KELVIN);
  const starts = ts.slice();
  const weights = [], xs = [], exc = [];
  let gapBefore = ts[0] - start > gapLimit;
  if (gapBefore) gaps.push({ start_ms: start, end_ms: ts[0] });
  else starts[0] = start;
  let sumW = 0, sumWx = 0, sumWv = 0;
  let above = 0, below = 0, aboveAllowed = 0, belowAllowed = 0, dmAbove = 0, dmBelow = 0;
  let side = 0, exStart = 0, exN = 0, exPeak = 0, exDm = 0, exGapBefore = false;
  let s = starts[0];
  for (let i = 0; i < n; i++) {
    const t = ts[i], v = vs[i];
    const nt = i + 1 < n ? ts[i + 1] : end;
    let e, gapAfter;
    if (nt - t > gapLimit) {
      e = t + interval;
      gapAfter = true;
    } else {
      e = nt;
      gapAfter = false;
    }
    const w = e - s;
    weights.push(w);
    const x = Math.exp(scale - k / (v + KELVIN));
    xs.push(x);
    sumW += w;
    sumWx += w * x;
    sumWv += w * v;
    if (v > hi) {
      const d = (v - hi) * w;
      above += w;
      dmAbove += d;
      if (v > ahi) aboveAllowed += w;
      if (side === 1) {
        exDm += d;
        exN += 1;
        if (v > exPeak) exPeak = v;
      } else {
        if (side) exc.push(excursion(side, exStart, s, exPeak, exDm, exN, exGapBefore));
        side = 1; exStart = s; exPeak = v; exDm = d; exN = 1; exGapBefore = gapBefore;
      }
    } else if (v < lo) {
      const d = (lo - v) * w;
      below += w;
      dmBelow += d;
      if (v < alo) belowAllowed += w;
      if (side === -1) {
        exDm += d;
        exN += 1;
        if (v < exPeak) exPeak = v;
      } else {
        if (side) exc.push(excursion(side, exStart, s, exPeak, exDm, exN, exGapBefore));
        side = -1; exStart = s; exPeak = v; exDm = d; exN = 1; exGapBefore = gapBefore;
      }
    } else if (side) {
      exc.push(excursion(side, exStart, s, exPeak, exDm, exN, exGapBefore));
      side = 0;
    }
    if (gapAfter) {
      gaps.push({ start_ms: e, end_ms: nt });
      if (side) {
        exc.push(excursion(side, exStart, e, exPeak, exDm, exN, exGapBefore, true));
        side = 0;
      }
    }
    gapBefore = gapAfter;
    s = nt;
  }
  if (side) exc.push(excursion(side, exStart, end, exPeak, exDm, exN, exGapBefore));
  return {
    starts, weights, xs, scale, gaps, covered: sumW, min: vmin, max: vmax, mean: sumWv / sumW,
    mkt: mktFromRatio(scale, sumWx / sumW), above, below, aboveAllowed, belowAllowed,
    dmAbove: dmAbove / MINUTE_MS, dmBelow: dmBelow / MINUTE_MS, excursions: exc,
  };
}

// _max_window: the highest MKT of any window inside the custody and where it starts
// (the maximum of a ratio of piecewise-linear sums is at a break: see the Python).
function maxWindow(path, start, end, window) {
  const { starts, weights, xs } = path;
  if (end - start <= window) return [path.mkt, start];
  const m = starts.length;
  const ends = starts.map((s, i) => s + weights[i]);
  const pn = [0], pd = [0];
  for (let i = 0; i < m; i++) {
    pn.push(pn[i] + xs[i] * weights[i]);
    pd.push(pd[i] + weights[i]);
  }
  const lastA = end - window;
  let best = -1, bestA = start;
  const cumulative = (y) => {
    const j = bisectRight(starts, y) - 1;
    if (j < 0) return [0, 0];
    const part = Math.min(y, ends[j]) - starts[j];
    return [pn[j] + xs[j] * part, pd[j] + part];
  };
  const st = [...starts, Number.MAX_VALUE];
  let j = 0;
  const upto = bisectRight(starts, lastA);
  for (let kk = 0; kk < upto; kk++) {
    const a = st[kk];
    const y = a + window;
    while (st[j] <= y) j++;
    const seg = j - 1;
    const e = ends[seg];
    const part = (y < e ? y : e) - st[seg];
    const r = (pn[seg] + xs[seg] * part - pn[kk]) / (pd[seg] + part - pd[kk]);
    if (r > best) {
      best = r;
      bestA = a;
    }
  }
  j = 0;
  for (let kk = bisectLeft(ends, start + window); kk < m; kk++) {
    const a = ends[kk] - window;
    while (st[j] <= a) j++;
    const seg = j - 1;
    let nA, dA;
    if (seg < 0) {
      nA = 0; dA = 0;
    } else {
      const e = ends[seg];
      const part = (a < e ? a : e) - st[seg];
      nA = pn[seg] + xs[seg] * part;
      dA = pd[seg] + part;
    }
    const r = (pn[kk + 1] - nA) / (pd[kk + 1] - dA);
    if (r > best || (r === best && a < bestA)) {
      best = r;
      bestA = a;
    }
  }
  const extra = new Set([start, lastA]);
  for (const g of path.gaps) {
    extra.add(g.start_ms);
    extra.add(g.end_ms - window);
  }
  for (const a of [...extra].sort((x, y) => x - y)) {
    if (!(start <= a && a <= lastA)) continue;
    const [n1, d1] = cumulative(a + window);
    const [n0, d0] = cumulative(a);
    if (d1 === d0) continue;
    const r = (n1 - n0) / (d1 - d0);
    if (r > best || (r === best && a < bestA)) {
      best = r;
      bestA = a;
    }
  }
  return [mktFromRatio(path.scale, best), bestA];
}

// A series: checked times (integers, strictly increasing) and values; interval declared
// or learned (the lower median spacing).
export function series(samples, intervalMs = null) {
  const times = [], values = [];
  for (const s of samples) {
    if (!Array.isArray(s) || s.length !== 2) fail("a sample is a (t_ms, value) pair", "sample-malformed");
    times.push(checkTime(s[0]));
    values.push(checkValue(s[1]));
  }
  checkOrder(times);
  const interval = intervalMs === null ? medianSpacing(times) : checkInterval(intervalMs);
  return { times, values, interval };
}

export function meanKineticTemperature(samples, intervalMs = null) {
  const s = series(samples, intervalMs);
  if (!s.times.length) fail("no samples", "no-samples");
  const end = s.times[s.times.length - 1] + s.interval;
  return walk(s.times, s.values, s.interval, s.times[0], end, null, null, null, null).mkt;
}

// --- the verdict ----------------------------------------------------------------------------

// _words: a duration for people (only in sentences, which are not compared).
export function durationWords(ms) {
  if (ms < MINUTE_MS) return `${Math.round(ms / 1000)} s`;
  let minutes = Math.round(ms / MINUTE_MS);
  let days = 0;
  if (minutes >= 2 * 24 * 60) {
    days = Math.floor(minutes / (24 * 60));
    minutes %= 24 * 60;
  }
  const hours = Math.floor(minutes / 60);
  minutes %= 60;
  return [[days, "d"], [hours, "h"], [minutes, "min"]].filter(([n]) => n).map(([n, u]) => `${n} ${u}`).join(" ");
}

function sensorFigures(sensor, s, profile, start, end) {
  const path = walk(s.times, s.values, s.interval, start, end, profile.low_c, profile.high_c,
    profile.allowed_low_c, profile.allowed_high_c);
  const window = profile.mkt_window_ms;
  let top;
  if (path.mkt === null) top = [null, null];
  else if (window === null) top = [path.mkt, start];
  else top = maxWindow(path, start, end, window);
  const gapMs = path.gaps.reduce((a, g) => a + (g.end_ms - g.start_ms), 0);
  return {
    sensor, interval_ms: s.interval, readings: path.weights.length, min_c: path.min,
    max_c: path.max, mean_c: path.mean, mkt_c: path.mkt, mkt_window_ms: window,
    mkt_max_window_c: top[0], mkt_max_window_start_ms: top[1], time_above_ms: path.above,
    time_below_ms: path.below, time_above_allowed_ms: path.aboveAllowed,
    time_below_allowed_ms: path.belowAllowed, degree_minutes_above: path.dmAbove,
    degree_minutes_below: path.dmBelow, excursions: path.excursions, covered_ms: path.covered,
    gap_ms: gapMs, covered_fraction: path.covered / (end - start),
    gaps: path.gaps.map((g) => ({ ...g, duration_ms: g.end_ms - g.start_ms })),
  };
}

function excursionReason(f, side, bound, allowed) {
  const total = side === "above" ? f.time_above_ms : f.time_below_ms;
  const beyond = side === "above" ? f.time_above_allowed_ms : f.time_below_allowed_ms;
  if (!total || bound === null) return null;
  const mine = f.excursions.filter((e) => e.side === side);
  const what = `${f.sensor}: ${mine.length} excursion(s) ${side} ${bound} °C, ${durationWords(total)} in all`;
  if (allowed === null) return reason(`excursion-${side}`, "fail", what, f.sensor);
  if (beyond) return reason(`excursion-${side}`, "fail", `${what}; ${durationWords(beyond)} ${side} the allowed ${allowed} °C`, f.sensor);
  return reason("excursion-allowed", "pass", `${what}, within the allowed excursions to ${allowed} °C`, f.sensor);
}

function reason(code, status, message, sensor = null) {
  return { code, status, sensor, message };
}

function reasonsOf(f, profile) {
  const out = [
    excursionReason(f, "above", profile.high_c, profile.allowed_high_c),
    excursionReason(f, "below", profile.low_c, profile.allowed_low_c),
  ].filter((r) => r !== null);
  const limit = profile.mkt_limit_c;
  if (limit !== null && f.mkt_max_window_c !== null && f.mkt_max_window_c > limit) {
    out.push(reason("mkt-above-limit", "fail",
      `${f.sensor}: the mean kinetic temperature reaches ${f.mkt_max_window_c.toFixed(2)} °C, above the ${limit} °C limit`, f.sensor));
  }
  if (f.gaps.length) {
    out.push(reason("coverage-gap", "indeterminate", f.readings ?
      `${f.sensor}: no reading for ${durationWords(f.gap_ms)} in ${f.gaps.length} gap(s) while the lot was held` :
      `${f.sensor}: no reading at all while the lot was held`, f.sensor));
  }
  return out;
}

function worst(reasons) {
  let status = "pass";
  for (const r of reasons) if (STATUS_RANK[r.status] > STATUS_RANK[status]) status = r.status;
  return status;
}

function checkCustody(start, end) {
  checkTime(start, "the custody start");
  checkTime(end, "the custody end");
  if (!(start < end)) fail("the custody ends before it starts", "custody-bad-window");
}

// verdict(): one custody under a profile; seriesBySensor = {id: series(...)}; digest =
// the profile's SHA-256 (hex) of its canonical JSON (the caller hashes, asynchronously).
export function verdict(seriesBySensor, profile, start, end, digest) {
  checkCustody(start, end);
  const ids = Object.keys(seriesBySensor);
  for (const id of ids) checkIdentifier(id, "a sensor id");
  const figures = [], reasons = [];
  for (const id of ids.sort()) {
    const f = sensorFigures(id, seriesBySensor[id], profile, start, end);
    figures.push(f);
    reasons.push(...reasonsOf(f, profile));
  }
  if (!figures.length) reasons.push(reason("no-sensors", "indeterminate", "no sensor was with the lot while it was held"));
  return {
    rules: RULES_VERSION, status: worst(reasons),
    profile: { digest, name: profile.name, version: profile.version },
    custody: { start_ms: start, end_ms: end }, reasons, sensors: figures,
  };
}

function distance(v, low, high) {
  if (high !== null && v > high) return v - high;
  if (low !== null && v < low) return low - v;
  return 0;
}

// lot_verdict(): legs = [{holder, start_ms, end_ms, readings: {sensor: [[t, °C], ...]}}]
// in time order; notes = the caller's reasons beside the readings (pass or indeterminate).
export function lotVerdict(legs, profile, notes, digest) {
  for (const n of notes) if (n.status === "fail") fail(`a note can only make a verdict indeterminate: ${n.code}`, "malformed");
  for (let i = 1; i < legs.length; i++) {
    if (legs[i].start_ms < legs[i - 1].start_ms) fail("custody legs must be in time order", "custody-bad-window");
  }
  const low = profile.low_c, high = profile.high_c;
  const impossible = new Map();
  const perLeg = [];
  const every = new Map();
  for (const leg of legs) {
    checkCustody(leg.start_ms, leg.end_ms);
    checkIdentifier(leg.holder, "a holder id");
    const chosen = new Map();
    for (const [sensor, samples] of Object.entries(leg.readings)) {
      checkIdentifier(sensor, "a sensor id");
      const kept = chosen.get(sensor) || new Map();
      chosen.set(sensor, kept);
      for (const [t, v] of samples) {
        checkTime(t);
        if (!(leg.start_ms <= t && t < leg.end_ms)) continue;
        // Not a number, not finite, at or below absolute zero: set aside and said.
        if (typeof v !== "number" || !Number.isFinite(v) || v <= -KELVIN) {
          impossible.set(sensor, (impossible.get(sensor) || 0) + 1);
          continue;
        }
        const old = kept.get(t);
        if (old === undefined) kept.set(t, v);
        else {
          const dn = distance(v, low, high), dold = distance(old, low, high);
          if (dn > dold || (dn === dold && v > old)) kept.set(t, v);
        }
      }
      const all = every.get(sensor) || new Set();
      for (const t of kept.keys()) all.add(t);
      every.set(sensor, all);
    }
    perLeg.push(chosen);
  }
  const intervals = new Map();
  for (const [sensor, ts] of every) {
    const sorted = [...ts].sort((a, b) => a - b);
    intervals.set(sensor, sorted.length > 1 ? medianSpacing(sorted) : LONE_READING_INTERVAL_MS);
  }
  const judged = legs.map((leg, i) => {
    const bySensor = {};
    for (const [sensor, kept] of perLeg[i]) {
      if (!kept.size) continue;
      const times = [...kept.keys()].sort((a, b) => a - b);
      bySensor[sensor] = { times, values: times.map((t) => kept.get(t)), interval: intervals.get(sensor) };
    }
    return { holder: leg.holder, verdict: verdict(bySensor, profile, leg.start_ms, leg.end_ms, digest) };
  });
  const extra = [...impossible.keys()].sort().map((sensor) => reason("impossible-reading", "indeterminate",
    `${sensor}: ${impossible.get(sensor)} reading(s) no thermometer can give were set aside`, sensor));
  if (!legs.length) extra.push(reason("no-custody", "indeterminate", "no scan shows who held the lot"));
  for (let i = 1; i < legs.length; i++) {
    const a = legs[i - 1], b = legs[i];
    if (b.start_ms - a.end_ms > HANDOVER_GAP_MS) {
      extra.push(reason("custody-gap", "indeterminate",
        `nobody measured the lot for ${durationWords(b.start_ms - a.end_ms)} between ${a.holder} and ${b.holder}`));
    }
  }
  const allNotes = [...extra, ...notes];
  const reasons = [...judged.flatMap((j) => j.verdict.reasons), ...allNotes];
  return {
    rules: RULES_VERSION, status: worst(reasons),
    profile: { digest, name: profile.name, version: profile.version },
    legs: judged, notes: allNotes,
  };
}

// Two verdict JSONs the same but for sentences and the last bits of floats.
export function sameVerdict(a, b, path = "") {
  if (typeof a === "number" && typeof b === "number") {
    if (a === b || Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))) return null;
    return `${path || "the top"}: ${a} vs ${b}`;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${path}: ${a.length} vs ${b.length} items`;
    for (let i = 0; i < a.length; i++) {
      const d = sameVerdict(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of [...keys].sort()) {
      if (k === "message") continue;
      const d = sameVerdict(a[k], b[k], `${path}.${k}`);
      if (d) return d;
    }
    return null;
  }
  return a === b ? null : `${path || "the top"}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
}
