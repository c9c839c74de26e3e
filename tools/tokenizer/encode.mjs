// Encodes texts with HuggingFace's Rust tokenizer (the oracle), for the reference scripts.
// Usage: node tools/tokenizer/encode.mjs TOKENIZER_JSON < texts.json; prints [[ids...], ...]
// (add_special_tokens=false: the caller adds EOS/padding as the model's tokenization asks).
import {readFileSync} from "node:fs";
import {Tokenizer} from "tokenizers";

const tok = Tokenizer.fromFile(process.argv[2]);
const texts = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const t of texts) out.push(Array.from((await tok.encode(t, null, {addSpecialTokens: false})).getIds()));
console.log(JSON.stringify(out));
