// The official OpenAI Node SDK as a user runs it, pointed at the relay.
//
//   OPENAI_BASE_URL=http://relay/v1 OPENAI_API_KEY=sk-... node embed.mjs '<calls>'
//
// <calls> is a JSON list of `embeddings.create` bodies ({model, input, and
// dimensions or encoding_format if wanted}). The SDK reads the base URL and
// the key from the environment itself. Prints one JSON result per call:
// {"ok": true, "model", "usage", "vectors": [[...], ...]} in data's order,
// or {"ok": false, "status", "error"}. Without encoding_format the SDK asks
// for base64 and decodes whatever comes back as float32 bytes, blindly.
import OpenAI from "openai";

const calls = JSON.parse(process.argv[2] ?? "[]");
const client = new OpenAI({ maxRetries: 0, timeout: 30_000 });
const results = [];
for (const body of calls) {
  try {
    const answer = await client.embeddings.create(body);
    results.push({
      ok: true,
      model: answer.model,
      usage: answer.usage,
      indexes: answer.data.map((item) => item.index),
      vectors: answer.data.map((item) => Array.from(item.embedding)),
    });
  } catch (error) {
    results.push({ ok: false, status: error?.status ?? null, error: String(error) });
  }
}
process.stdout.write(JSON.stringify(results));
