// A possibly billed failure is not retried by the official `openai` package nor by the Vercel AI
// SDK, each with its default retries (tests/test_gateway_node.py scripts the emulator to drop
// every openai generation after reading it, and counts the calls that reached it).
import assert from "node:assert/strict";
import { test } from "node:test";

import OpenAI from "openai";
import { createOpenAI } from "@ai-sdk/openai";
import { APICallError, generateImage } from "ai";

const BASE = process.env.GATEWAY_URL;
const KEY = process.env.GATEWAY_KEY;

test("openai: a possibly billed failure is an APIError 424, not retried", async () => {
  const client = new OpenAI({ baseURL: `${BASE}/v1`, apiKey: KEY }); // the default: 2 retries
  await assert.rejects(client.images.generate({ model: "openai:gpt-image-2", prompt: "node once" }), (err) => {
    assert.ok(err instanceof OpenAI.APIError, String(err));
    assert.equal(err.status, 424);
    assert.equal(err.code, "possibly_billed");
    assert.match(err.message, /may have been billed/);
    return true;
  });
});

test("ai sdk: a possibly billed failure is an APICallError that is not retryable", async () => {
  const provider = createOpenAI({ baseURL: `${BASE}/v1`, apiKey: KEY });
  await assert.rejects(
    generateImage({ model: provider.image("openai:gpt-image-2"), prompt: "ai sdk once" }), // 2 retries
    (err) => {
      assert.ok(APICallError.isInstance(err), String(err));
      assert.equal(err.statusCode, 424);
      assert.equal(err.isRetryable, false);
      return true;
    },
  );
});
