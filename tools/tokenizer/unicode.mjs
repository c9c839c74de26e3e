// Probes the oracle (HuggingFace's Rust tokenizer, npm "tokenizers") code point by code point for
// the two pieces of Unicode data that tokenization depends on, and writes what it does to
// tokenizer/testdata/unicode/, where tokenizer's tests compare toklip against it without node:
//   nfc.txt    its NFC normalizer (the "NFC" normalizer of tokenizer.json) on every code point alone,
//              on every canonical decomposition, with marks around bases and composites, on Hangul
//              jamo and on long runs of combining marks; and the canonical combining class each
//              code point behaves as having;
//   props.txt  the code points its pre-tokenizer regex (Oniguruma) puts in each property class and
//              escape that a Split pattern can use (\p{..} general categories, \s, \d, \w, \h), in
//              classes built of them (negated, intersected, the real pre-tokenizers'), and in
//              letters under (?i).
// Run from the repository root after `npm ci --prefix tools/tokenizer` (about a minute):
//   node tools/tokenizer/unicode.mjs
import {mkdirSync, writeFileSync} from "node:fs";
import {Tokenizer, nfcNormalizer, nfdNormalizer} from "tokenizers";

const MAX = 0x10ffff;
const isSurrogate = (c) => c >= 0xd800 && c <= 0xdfff;
const codePoints = [];
for (let c = 0; c <= MAX; c++) if (!isSurrogate(c)) codePoints.push(c);
const hex = (s) => Array.from(s, (ch) => ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")).join(" ");

// ---- NFC -----------------------------------------------------------------------------------

const nfc = nfcNormalizer();
const norm = (s) => nfc.normalizeString(s);
const lines = ["# NFC of HuggingFace tokenizers 0.23.2 (its normalizer \"NFC\"), made by tools/tokenizer/unicode.mjs.",
    "# <family> <input code points> <TAB> <output code points, or = when unchanged>.",
    "# Families \"single\", \"after345\" and \"before334\" run over every code point but surrogates: only",
    "# those whose output differs are listed, every other one is unchanged. \"ccc\" lines give the",
    "# canonical combining class a code point behaves as having (every other one behaves as 0)."];
const emit = (family, input, output) => lines.push(`${family} ${hex(input)}\t${output === input ? "=" : hex(output)}`);

// Every code point alone: singletons, composition exclusions, non-starter decompositions change.
for (const c of codePoints) {
    const s = String.fromCodePoint(c);
    const out = norm(s);
    if (out !== s) emit("single", s, out);
}

// Canonical ordering against U+0345 (ccc 240) and U+0334 (ccc 1) after "$", which composes with
// nothing: a code point moves before U+0345 when 0 < ccc < 240, and after U+0334 when ccc > 1.
const nonStarters = [];
for (const c of codePoints) {
    const ch = String.fromCodePoint(c);
    const b = "$\u0345" + ch, bOut = norm(b);
    const a = "$" + ch + "\u0334", aOut = norm(a);
    if (bOut !== b) emit("after345", b, bOut);
    if (aOut !== a) emit("before334", a, aOut);
    if ((bOut === "$" + ch + "\u0345" || aOut === "$\u0334" + ch) && norm(ch) === ch) nonStarters.push(c);
}

// One mark for each canonical combining class of Unicode 9.0 (UnicodeData.txt): a non-starter
// ties with the one of its class (neither moves before the other), which gives its class.
const references = [[1, 0x334], [7, 0x93c], [8, 0x3099], [9, 0x94d], [10, 0x5b0], [11, 0x5b1], [12, 0x5b2],
    [13, 0x5b3], [14, 0x5b4], [15, 0x5b5], [16, 0x5b6], [17, 0x5b7], [18, 0x5b8], [19, 0x5b9], [20, 0x5bb],
    [21, 0x5bc], [22, 0x5bd], [23, 0x5bf], [24, 0x5c1], [25, 0x5c2], [26, 0xfb1e], [27, 0x64b], [28, 0x64c],
    [29, 0x64d], [30, 0x618], [31, 0x619], [32, 0x61a], [33, 0x651], [34, 0x652], [35, 0x670], [36, 0x711],
    [84, 0xc55], [91, 0xc56], [103, 0xe38], [107, 0xe48], [118, 0xeb8], [122, 0xec8], [129, 0xf71],
    [130, 0xf72], [132, 0xf74], [202, 0x327], [214, 0x1dce], [216, 0x31b], [218, 0x302a], [220, 0x316],
    [222, 0x59a], [224, 0x302e], [226, 0x1d16d], [228, 0x5ae], [230, 0x300], [232, 0x315], [233, 0x35c],
    [234, 0x35d], [240, 0x345]];
const ccc = new Map();
for (const c of nonStarters) {
    const ch = String.fromCodePoint(c);
    let found = -1;
    for (const [value, r] of references) {
        const ref = String.fromCodePoint(r);
        if (norm("$" + ref + ch) === "$" + ref + ch && norm("$" + ch + ref) === "$" + ch + ref) found = value;
    }
    if (found < 0) throw new Error(`U+${hex(ch)} ties with no reference mark`);
    ccc.set(c, found);
    lines.push(`ccc ${hex(ch)}\t${found}`);
}

// Every canonical decomposition, the oracle's own and the newest one Node's ICU knows (which
// covers the composites added after the oracle's data), recomposed. Hangul syllables, which
// decompose by arithmetic, are left to the Hangul family below.
const nfd = nfdNormalizer();
const decompositions = new Set();
for (const c of codePoints) {
    if (c >= 0xac00 && c <= 0xd7a3) continue;
    const ch = String.fromCodePoint(c);
    for (const d of [nfd.normalizeString(ch), ch.normalize("NFD")]) if (d !== ch) decompositions.add(d);
}
for (const d of decompositions) emit("decomposed", d, norm(d));

// Composition blocking: each two-character decomposition with a mark of a lower, equal and higher
// class between or after its characters.
const blockers = ["\u0334", "\u0316", "\u0300", "\u0345"];
for (const d of decompositions) {
    const [base, second] = Array.from(d);
    if (Array.from(d).length !== 2) continue;
    for (const m of blockers) {
        emit("blocked", base + m + second, norm(base + m + second));
        emit("blocked", base + second + m, norm(base + second + m));
    }
}

// Hangul: every leading consonant with every vowel (and the code points just outside both
// ranges), and every 13th LV syllable with every trailing consonant and its neighbours.
for (let l = 0x10ff; l <= 0x1114; l++) for (let v = 0x115f; v <= 0x1176; v++) {
    const s = String.fromCodePoint(l, v);
    emit("hangul", s, norm(s));
}
for (let lv = 0xac00; lv <= 0xd7a3; lv += 28 * 13) for (let t = 0x11a6; t <= 0x11c3; t++) {
    const s = String.fromCodePoint(lv, t);
    emit("hangul", s, norm(s));
    emit("hangul", s.normalize("NFD"), norm(s.normalize("NFD")));
}
for (const s of ["\uac01\u11a8", "\u1100\u1161\u11a8", "\u1100\u0301\u1161", "\uac00\u0334\u11a8", "\u1100\u1100\u1161\u1161",
    "\ud7a3\u11a8", "\ud7a4\u11a8", "\uabff\u11a8"]) emit("hangul", s, norm(s));

// Long runs of combining marks (Go's x/text NFC puts U+034F after 30 non-starters; the oracle
// does not), out of order, mixed with starters, composable and not.
const runs = [];
for (const n of [29, 30, 31, 32, 60, 61, 100]) {
    runs.push("a" + "\u0301".repeat(n), "a" + "\u0316\u0301".repeat(n >> 1), "e" + "\u0301\u0316".repeat(n), "x" + "\u0345".repeat(n) + "\u0334");
    runs.push("\u0301".repeat(n), "a" + "\u0300\u0301\u0302\u0303\u0304".repeat(n) + "b\u0327".repeat(2), "\u1100" + "\u0334".repeat(n) + "\u1161");
    runs.push("o" + "\u031b".repeat(n) + "\u0301\u0323", "A" + "\u030a".repeat(n) + "\u0301", "\u05d1" + "\u05b0\u05bc".repeat(n));
}
runs.push("a" + "\u0316\u0301".repeat(500), "Ω\u0301\u0345", "ᾼ\u0301", "\u0344\u0301", "\u0f73\u0f71", "\u0f81\u0f80\u0f74", "q\u0307\u0323\u0307", "ṩ\u0323\u0307", "\u0041\u030a\u212b",
    "\u0b47\u0300\u0b3e", "\u0b47\u0b3e", "\u09c7\u09be\u0301", "\u0061\u034f\u0301", "\u0061\u0301\u034f\u0316", "\u1100\u034f\u1161");
for (const s of runs) emit("sequence", s, norm(s));

// ---- regex property classes ----------------------------------------------------------------

// The oracle's pre-tokenizer with one Split pattern and "Removed": a code point is in the class
// when it disappears. Code points are probed many at a time, between separators the class lacks.
function splitter(pattern) {
    const json = {version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null,
        pre_tokenizer: {type: "Split", pattern: {Regex: pattern}, behavior: "Removed", invert: false},
        post_processor: null, decoder: null, model: {type: "WordLevel", vocab: {"[UNK]": 0}, unk_token: "[UNK]"}};
    return Tokenizer.fromString(JSON.stringify(json)).getPreTokenizer();
}

function members(pattern) {
    const pre = splitter(pattern);
    const sep = ["!", "a", " ", "\u3042", "A", "0", "s"].find((s) => pre.preTokenizeString(s).length === 1);
    if (sep === undefined) throw new Error(`no separator outside ${pattern}`);
    const inClass = new Uint8Array(MAX + 1);
    for (let i = 0; i < codePoints.length; i += 4096) {
        const chunk = codePoints.slice(i, i + 4096).filter((c) => String.fromCodePoint(c) !== sep);
        const text = chunk.map((c) => sep + String.fromCodePoint(c)).join("") + sep;
        const left = pre.preTokenizeString(text).map((p) => p[0]).join("").split(sep);
        if (left.length !== chunk.length + 2) throw new Error(`${pattern}: a match crossed a separator`);
        chunk.forEach((c, k) => { inClass[c] = left[k + 1] === "" ? 1 : 0; });
    }
    const ranges = [];
    for (let c = 0; c <= MAX; c++) {
        if (!inClass[c]) continue;
        if (ranges.length && ranges[ranges.length - 1][1] === c - 1) ranges[ranges.length - 1][1] = c;
        else ranges.push([c, c]);
    }
    return ranges;
}

const categories = ["L", "Lu", "Ll", "Lt", "Lm", "Lo", "LC", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No", "P", "Pc",
    "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "S", "Sm", "Sc", "Sk", "So", "Z", "Zs", "Zl", "Zp", "C", "Cc", "Cf", "Co", "Cn"];
const patterns = [...categories.map((c) => `\\p{${c}}`), "\\s", "\\d", "\\w", "\\h",
    ..."abcdefghijklmnopqrstuvwxyz".split("").map((l) => `(?i:${l})`),
    // long names, negations and the classes of the real pre-tokenizers
    "\\p{Letter}", "\\p{decimal number}", "\\p{Other_Symbol}", "\\P{L}", "\\p{^N}", "\\P{^Lu}", "\\S", "\\W", "\\H",
    "[^\\r\\n\\p{L}\\p{N}]", "[^\\s\\p{L}\\p{N}]", "[\\p{L}\\p{N}]", "[a-z&&[^aeiou]]", "[\\x{41}-\\x{43}\\u00e9]",
    // case-insensitive classes, and letters whose case orbit is more than a pair
    "(?i:[^s])", "(?i:[a-z])", "(?i:\\p{Lu})", "(?i:\\P{Lu})", "(?i:\\p{Ll})", "(?i:\u00e9)", "(?i:\u01c5)", "(?i:\u03c3)",
    "(?i:\u03b8)", "(?i:\u0399)", "(?i:\u1e60)", "(?i:\u0130)", "(?i:\u0131)"];
const props = ["# Code points that HuggingFace tokenizers 0.23.2's pre-tokenizer regex (Oniguruma) puts in each",
    "# class, made by tools/tokenizer/unicode.mjs: <pattern> <TAB> <first>-<last> ... in hex. Surrogates,",
    "# which a string cannot hold, are never probed."];
const classes = {};
for (const p of patterns) {
    classes[p] = members(p);
    props.push(`${p}\t${classes[p].map(([a, b]) => (a === b ? a.toString(16) : `${a.toString(16)}-${b.toString(16)}`).toUpperCase()).join(" ")}`);
}

mkdirSync("tokenizer/testdata/unicode", {recursive: true});
writeFileSync("tokenizer/testdata/unicode/nfc.txt", lines.join("\n") + "\n");
writeFileSync("tokenizer/testdata/unicode/props.txt", props.join("\n") + "\n");
console.error(`nfc.txt: ${lines.length} lines, ${ccc.size} non-starters; props.txt: ${patterns.length} classes`);
