/**
 * A CloudEvent as an HTTP message in binary content mode (CloudEvents HTTP binding 1.0, section
 * 3.1): attributes as `ce-` headers, `datacontenttype` as Content-Type, the data as the body. This
 * is how a reply and the events posted to K_SINK travel: binary mode is the one every Knative sink
 * must accept (batch mode is optional in the binding, and Knative's broker ingress refuses it).
 * Decoding is adapters/http/binding.ts's toCloudEvents.
 */
import type { CloudEvent } from '../../core/event.js';

export interface HttpMessage {
  headers: Record<string, string>;
  body: Buffer;
}

/** Header values percent-encode space, `"`, `%` and everything outside printable ASCII (binding 3.1.3.2). */
function encodeHeaderValue(value: string): string {
  let out = '';
  for (const char of value) {
    const code = char.codePointAt(0)!;
    if (code > 0x20 && code < 0x7f && char !== '"' && char !== '%') out += char;
    else for (const byte of Buffer.from(char, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function isJson(contentType: string): boolean {
  const media = contentType.split(';')[0].trim().toLowerCase();
  return media === 'application/json' || media.endsWith('+json');
}

export function toBinaryHttp(event: CloudEvent): HttpMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event)) {
    if (name === 'data' || name === 'data_base64' || name === 'datacontenttype' || value === undefined || value === null) continue;
    headers[`ce-${name}`] = encodeHeaderValue(typeof value === 'string' ? value : JSON.stringify(value));
  }
  if (typeof event.data_base64 === 'string') {
    headers['content-type'] = event.datacontenttype ?? 'application/octet-stream';
    return { headers, body: Buffer.from(event.data_base64, 'base64') };
  }
  const contentType = event.datacontenttype ?? 'application/json';
  if (event.data === undefined) {
    if (event.datacontenttype) headers['content-type'] = contentType;
    return { headers, body: Buffer.alloc(0) };
  }
  headers['content-type'] = contentType;
  const text = typeof event.data === 'string' && !isJson(contentType) ? event.data : JSON.stringify(event.data);
  return { headers, body: Buffer.from(text, 'utf8') };
}
