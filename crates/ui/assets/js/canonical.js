// The canonical bytes of an audit event (crates/audit/src/canonical.rs): the
// JSON text with object keys sorted by their UTF-8 bytes, no whitespace, and
// numbers as the server prints them. The event is parsed here from the text
// the API sent, keeping each number's digits, because JSON.parse would round
// integers above 2^53 and change the bytes.

/** A number as its source text, so no precision is lost. */
class RawNumber {
  constructor(text) {
    this.text = text;
  }
}

/** Parses JSON text, keeping numbers as RawNumber. Throws on invalid JSON. */
export function parseExact(text) {
  let at = 0;
  const fail = (what) => {
    throw new SyntaxError(`${what} at offset ${at}`);
  };
  const space = () => {
    while (at < text.length && " \t\n\r".includes(text[at])) at++;
  };
  const value = () => {
    space();
    const c = text[at];
    if (c === "{") {
      at++;
      const object = new Map();
      space();
      if (text[at] === "}") {
        at++;
        return object;
      }
      for (;;) {
        space();
        if (text[at] !== '"') fail("expected a key");
        const key = string();
        space();
        if (text[at++] !== ":") fail("expected ':'");
        object.set(key, value());
        space();
        const next = text[at++];
        if (next === "}") return object;
        if (next !== ",") fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      at++;
      const array = [];
      space();
      if (text[at] === "]") {
        at++;
        return array;
      }
      for (;;) {
        array.push(value());
        space();
        const next = text[at++];
        if (next === "]") return array;
        if (next !== ",") fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    for (const [word, result] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return result;
      }
    }
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(at, at + 400));
    if (!match) fail("unexpected character");
    at += match[0].length;
    return new RawNumber(match[0]);
  };
  const string = () => {
    at++;
    let out = "";
    for (;;) {
      const c = text[at++];
      if (c === undefined) fail("unterminated string");
      if (c === '"') {
        // What serde_json refuses is refused here: a lone surrogate would hash like U+FFFD.
        if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(out)) fail("a lone surrogate");
        return out;
      }
      if (c < " ") fail("a control character in a string");
      if (c !== "\\") {
        out += c;
        continue;
      }
      const e = text[at++];
      const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
      if (e in simple) out += simple[e];
      else if (e === "u") {
        const hex = text.slice(at, at + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
        out += String.fromCharCode(parseInt(hex, 16));
        at += 4;
      } else fail("bad escape");
    }
  };
  const result = value();
  space();
  if (at !== text.length) fail("trailing characters");
  return result;
}

const I64_MIN = -(2n ** 63n);
const U64_MAX = 2n ** 64n - 1n;

/**
 * The shortest digits and decimal exponent of a positive double, from
 * Number's own printer (which picks the shortest round-trip digits, the
 * even one on a tie): 0.000123 is ["123", -4], 1e21 is ["1", 21].
 */
function shortest(value) {
  const [mantissa, exponentText = "0"] = String(value).split("e");
  const [whole, fraction = ""] = mantissa.split(".");
  let digits = whole + fraction;
  let exponent = whole.length - 1 + Number(exponentText);
  const leading = /^0*/.exec(digits)[0].length;
  digits = digits.slice(leading).replace(/0+$/, "");
  exponent -= leading;
  return [digits, exponent];
}

/** A number as the canonical form writes it. */
function number(text) {
  // An integer that fits 64 bits, signed or not, as it is ("-0" is the double -0.0).
  if (/^-?(0|[1-9][0-9]*)$/.test(text) && text !== "-0") {
    const n = BigInt(text);
    if (n >= I64_MIN && n <= U64_MAX) return n.toString();
  }
  const value = Number(text);
  if (!Number.isFinite(value)) throw new RangeError(`number ${text} is out of range`);
  const sign = value < 0 || Object.is(value, -0) ? "-" : "";
  if (value === 0) return `${sign}0.0`;
  const [digits, exponent] = shortest(Math.abs(value));
  if (exponent >= -5 && exponent <= 15) {
    if (exponent < 0) return `${sign}0.${"0".repeat(-exponent - 1)}${digits}`;
    const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, "0");
    const fraction = digits.slice(exponent + 1) || "0";
    return `${sign}${whole}.${fraction}`;
  }
  const rest = digits.length > 1 ? `.${digits.slice(1)}` : "";
  return `${sign}${digits[0]}${rest}e${exponent < 0 ? "-" : "+"}${Math.abs(exponent)}`;
}

function quote(text) {
  let out = '"';
  for (const c of text) {
    const code = c.codePointAt(0);
    if (c === '"') out += '\\"';
    else if (c === "\\") out += "\\\\";
    else if (c === "\b") out += "\\b";
    else if (c === "\t") out += "\\t";
    else if (c === "\n") out += "\\n";
    else if (c === "\f") out += "\\f";
    else if (c === "\r") out += "\\r";
    else if (code < 0x20) out += `\\u00${code.toString(16).padStart(2, "0")}`;
    else out += c;
  }
  return `${out}"`;
}

const encoder = new TextEncoder();

/** Compares two strings by their UTF-8 bytes (code point order). */
function byUtf8(a, b) {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function write(value) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (value instanceof RawNumber) return number(value.text);
  if (typeof value === "string") return quote(value);
  if (Array.isArray(value)) return `[${value.map(write).join(",")}]`;
  const keys = [...value.keys()].sort(byUtf8);
  return `{${keys.map((key) => `${quote(key)}:${write(value.get(key))}`).join(",")}}`;
}

/** The canonical UTF-8 bytes of a value parseExact returned. */
export function canonicalBytes(value) {
  return encoder.encode(write(value));
}

/** A member of an object parseExact returned, as plain text for numbers. */
export function member(value, key) {
  const found = value instanceof Map ? value.get(key) : undefined;
  return found instanceof RawNumber ? found.text : found;
}

/**
 * A value parseExact returned as plain JavaScript, for display: objects for
 * maps, and numbers as numbers unless that would change them (integers past
 * 2^53 stay their exact digits, as strings).
 */
export function plain(value) {
  if (value instanceof RawNumber) {
    const number = Number(value.text);
    const integer = /^-?[0-9]+$/.test(value.text);
    return integer && !Number.isSafeInteger(number) ? value.text : number;
  }
  if (Array.isArray(value)) return value.map(plain);
  if (value instanceof Map) return Object.fromEntries([...value].map(([key, member]) => [key, plain(member)]));
  return value;
}
