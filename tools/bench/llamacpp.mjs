// Drives llama.cpp through node-llama-cpp on a GGUF file written by toklip.
//
// Default mode measures prefill and decode speed with the same prompt ids, threads and KV-cache
// type (F16) as toklip's side of the benchmark, and prints
// {"engine","build","prefill_tps":[...],"decode_tps":[...]}.
// With --greedy N it prints {"build","tokens":[...]}: the N tokens llama.cpp picks greedily after
// the prompt, which the benchmark compares with the PyTorch reference to check the file layout.
import {readFileSync} from "node:fs";
import {parseArgs} from "node:util";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const {values: a} = parseArgs({options: {
    model: {type: "string"}, prompt: {type: "string"}, decode: {type: "string", default: "128"},
    threads: {type: "string", default: "2"}, runs: {type: "string", default: "3"}, greedy: {type: "string"},
}});
const prompt = JSON.parse(readFileSync(a.prompt, "utf8"));
const decode = Number(a.decode), threads = Number(a.threads), runs = Number(a.runs);

// build "never" with prebuilt binaries off: use the addon that `node-llama-cpp source download`
// compiled for this machine, or fail.
const llama = await getLlama({gpu: false, build: "never", usePrebuiltBinaries: false, logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: a.model, gpuLayers: 0});

if (a.greedy) {
    const context = await model.createContext({contextSize: 128, batchSize: 128, threads});
    const tokens = [];
    for await (const t of context.getSequence().evaluate(prompt, {temperature: 0, yieldEogToken: true})) {
        tokens.push(t);
        if (tokens.length === Number(a.greedy)) break;
    }
    console.log(JSON.stringify({build: llama.buildType, tokens}));
    process.exit(0);
}

const context = await model.createContext({contextSize: 1024, batchSize: 512, threads, flashAttention: false});
const seq = context.getSequence();

const out = {engine: "llama.cpp", build: llama.buildType, prefill_tps: [], decode_tps: []};
for (let run = -1; run < runs; run++) { // run -1 warms up
    await seq.clearHistory();
    let t = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(prompt);
    const prefillMs = performance.now() - t;

    // Decode: evaluate the prompt again, then time the 128 one-token steps after the first token.
    await seq.clearHistory();
    let n = 0, start = 0;
    for await (const _ of seq.evaluate(prompt, {temperature: 0, yieldEogToken: true})) {
        if (n === 0) start = performance.now();
        if (n++ === decode) break;
    }
    const decodeMs = performance.now() - start;
    if (run >= 0) {
        out.prefill_tps.push(prompt.length / (prefillMs / 1000));
        out.decode_tps.push(decode / (decodeMs / 1000));
    }
}
console.log(JSON.stringify(out));
await context.dispose();
await model.dispose();
await llama.dispose();
