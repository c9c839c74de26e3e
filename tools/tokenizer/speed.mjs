// Encode speed of HuggingFace's Rust tokenizer (npm "tokenizers") on the corpus, for make bench.
// Usage: node tools/tokenizer/speed.mjs NAME RUNS; prints {"tokens": n, "seconds": [...]}.
import {readFileSync} from "node:fs";
import {Tokenizer} from "tokenizers";
import {models, tokenizerPath} from "./golden.mjs";

const [name, runs] = process.argv.slice(2);
const corpus = readFileSync(new URL("../../tokenizer/testdata/corpus.txt", import.meta.url), "utf8");
const tok = Tokenizer.fromFile(tokenizerPath(models[name]));
const out = {tokens: 0, seconds: []};
for (let run = -1; run < Number(runs); run++) { // run -1 warms up
    const t = performance.now();
    const enc = await tok.encode(corpus, null, {addSpecialTokens: false});
    const s = (performance.now() - t) / 1000;
    out.tokens = enc.getIds().length;
    if (run >= 0) out.seconds.push(s);
}
console.log(JSON.stringify(out));
