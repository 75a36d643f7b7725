// The imagerelay gateway from Node: the official `openai` package and the Vercel AI SDK's
// generateImage through @ai-sdk/openai, against a real `imagerelay serve` (started by
// tests/test_gateway_node.py, which passes GATEWAY_URL, the keys and FIXTURES, a folder of images).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import OpenAI, { toFile } from "openai";
import { createOpenAI } from "@ai-sdk/openai";
import { APICallError, generateImage } from "ai";

const BASE = process.env.GATEWAY_URL;
const KEY = process.env.GATEWAY_KEY;
const NARROW_KEY = process.env.GATEWAY_NARROW_KEY;
const fixture = (name) => readFileSync(join(process.env.FIXTURES, name));

const client = (apiKey = KEY) => new OpenAI({ baseURL: `${BASE}/v1`, apiKey, maxRetries: 0 });
const provider = (apiKey = KEY) => createOpenAI({ baseURL: `${BASE}/v1`, apiKey });

const JPEG = [0xff, 0xd8, 0xff];
const PNG = [0x89, 0x50, 0x4e, 0x47];
const startsWith = (bytes, magic) => magic.every((b, i) => bytes[i] === b);
const isImage = (bytes) => startsWith(bytes, JPEG) || startsWith(bytes, PNG);

test("openai: generate answers b64_json of a saved image, with its receipt", async () => {
  const { data, response } = await client()
    .images.generate({ prompt: "a red fox in snow", model: "auto" })
    .withResponse();
  assert.equal(data.data.length, 1);
  assert.ok(isImage(Buffer.from(data.data[0].b64_json, "base64")));
  assert.equal(response.headers.get("x-imagerelay-receipt"), data.imagerelay.receipt_id);
  assert.equal(data.imagerelay.provider, "xai");
  assert.ok(data.imagerelay.cost_usd > 0);
});

test("openai: response_format url is served by the gateway", async () => {
  const result = await client().images.generate({ prompt: "a lighthouse", response_format: "url" });
  const url = result.data[0].url;
  assert.ok(url.startsWith(`${BASE}/v1/images/`), url);
  const got = await fetch(url);
  assert.equal(got.status, 200);
  assert.ok(isImage(new Uint8Array(await got.arrayBuffer())));
});

test("openai: imagerelay fields ride in the body", async () => {
  const result = await client().images.generate({
    prompt: "a wide harbour",
    model: "xai",
    imagerelay: { aspect_ratio: "16:9", metadata: { from: "node" } },
  });
  const [w, h] = result.size.split("x").map(Number);
  assert.ok(w > h, result.size);
});

test("openai: edit with two images and a mask", async () => {
  const result = await client().images.edit({
    model: "openai:gpt-image-2",
    prompt: "paint the sky purple",
    image: [
      await toFile(fixture("first.png"), "first.png", { type: "image/png" }),
      await toFile(fixture("second.jpg"), "second.jpg", { type: "image/jpeg" }),
    ],
    mask: await toFile(fixture("mask.png"), "mask.png", { type: "image/png" }),
  });
  assert.equal(result.imagerelay.provider, "openai");
  assert.ok(isImage(Buffer.from(result.data[0].b64_json, "base64")));
});

test("openai: errors map to the SDK's classes", async () => {
  await assert.rejects(client().images.generate({ prompt: "a fox", size: "huge" }), (err) => {
    assert.ok(err instanceof OpenAI.BadRequestError, String(err));
    assert.equal(err.param, "size");
    return true;
  });
  await assert.rejects(client("irk_wrong").images.generate({ prompt: "a fox" }), OpenAI.AuthenticationError);
  await assert.rejects(
    client(NARROW_KEY).images.generate({ prompt: "a fox", model: "openai" }),
    OpenAI.PermissionDeniedError,
  );
});

test("ai sdk: generateImage makes n images through the gateway", async () => {
  const { images, warnings } = await generateImage({
    model: provider().image("xai:grok-imagine-image"),
    prompt: "two boats at dawn",
    n: 2,
  });
  assert.equal(images.length, 2);
  for (const image of images) assert.ok(isImage(image.uint8Array));
  assert.deepEqual(warnings, []);
});

test("ai sdk: size reaches the model and comes back in provider metadata", async () => {
  const { image, providerMetadata } = await generateImage({
    model: provider().image("openai:gpt-image-2"),
    prompt: "a banner",
    size: "1536x1024",
  });
  assert.ok(isImage(image.uint8Array));
  assert.equal(providerMetadata.openai.images[0].size, "1536x1024");
});

test("ai sdk: imagerelay fields through the x-imagerelay header", async () => {
  const { providerMetadata } = await generateImage({
    model: provider().image("xai"),
    prompt: "a tall tower",
    headers: { "x-imagerelay": JSON.stringify({ aspect_ratio: "9:16" }) },
  });
  const [w, h] = providerMetadata.openai.images[0].size.split("x").map(Number);
  assert.ok(h > w, providerMetadata.openai.images[0].size);
});

test("ai sdk: an edit with images and a mask", async () => {
  const { image } = await generateImage({
    model: provider().image("openai:gpt-image-2"),
    prompt: { text: "add a moon", images: [fixture("first.png")], mask: fixture("mask.png") },
  });
  assert.ok(isImage(image.uint8Array));
});

test("ai sdk: a wrong key is an APICallError with status 401", async () => {
  await assert.rejects(
    generateImage({ model: provider("irk_wrong").image("xai"), prompt: "a fox", maxRetries: 0 }),
    (err) => {
      assert.ok(APICallError.isInstance(err), String(err));
      assert.equal(err.statusCode, 401);
      return true;
    },
  );
});
