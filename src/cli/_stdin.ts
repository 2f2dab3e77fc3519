/**
 * Reading all of a stream as text (params from stdin).
 *
 * @module
 */

/** The whole stream, decoded as UTF-8. */
export async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text += chunk;
  }
  return text;
}
