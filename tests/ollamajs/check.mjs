// Drives toklip's ollama routes with ollama's own JS client (npm ollama), as
// tests/ollamajs_test.go asks: node check.mjs HOST IMAGE.png QUESTION DRAW_PROMPT
// It prints one JSON object of what the client got; the Go test judges it.
import { readFileSync } from 'node:fs'
import { Ollama } from 'ollama'

const [host, imagePath, question, drawPrompt] = process.argv.slice(2)
const ollama = new Ollama({ host })
const image = readFileSync(imagePath).toString('base64')
const out = {}

out.version = (await ollama.version()).version
out.models = (await ollama.list()).models.map((m) => m.name)
out.capabilities = (await ollama.show({ model: 'toklip-demo' })).capabilities

const messages = [{ role: 'user', content: question, images: [image] }]
let streamed = ''
let chunks = 0
let last
for await (const part of await ollama.chat({ model: 'toklip-demo', messages, stream: true, options: { temperature: 0 } })) {
  streamed += part.message.content
  chunks++
  last = part
}
out.chat = { streamed, chunks, done: last.done, doneReason: last.done_reason, evalCount: last.eval_count }
out.chatWhole = (await ollama.chat({ model: 'toklip-demo', messages, stream: false, options: { temperature: 0 } })).message.content
out.generate = (await ollama.generate({ model: 'toklip-demo', prompt: question, images: [image], stream: false, options: { temperature: 0 } })).response

let progress = 0
let drawn = ''
for await (const part of await ollama.generate({ model: 'toklip-demo', prompt: drawPrompt, width: 64, height: 64, stream: true, options: { temperature: 0 } })) {
  if (part.total) progress++
  if (part.done) drawn = part.image
}
out.draw = { progress, image: drawn }

out.embed = (await ollama.embed({ model: 'toklip-demo', input: [question, 'data:image/png;base64,' + image] })).embeddings.length

// The store through the client: copy, create from the copy (its progress streamed), a chat with
// the created model, delete, and what is loaded.
await ollama.copy({ source: 'toklip-demo', destination: 'js-copy' })
const statuses = []
for await (const p of await ollama.create({ model: 'js-made', from: 'js-copy', parameters: { num_predict: 40 }, license: 'js', stream: true })) {
  statuses.push(p.status)
}
const made = await ollama.show({ model: 'js-made' })
out.created = { statuses, parameters: made.parameters, license: made.license }
out.madeAnswer = (await ollama.chat({ model: 'js-made', messages, stream: false, keep_alive: '10m' })).message.content
await ollama.delete({ model: 'js-copy' })
out.modelsAfter = (await ollama.list()).models.map((m) => m.name)
out.ps = (await ollama.ps()).models.map((m) => ({ name: m.name, size: m.size, expires: m.expires_at }))

try {
  await ollama.chat({ model: 'gpt-9', messages: [{ role: 'user', content: 'hi' }], stream: false })
  out.error = null
} catch (e) {
  out.error = { status: e.status_code, message: e.error }
}
console.log(JSON.stringify(out))
