/* global URLSearchParams */
/** JSON over HTTP to the runtime; a failed request throws an Error with the server's own message. */

async function request(method, path) {
  let response;
  try {
    response = await fetch(path, { method, headers: { accept: 'application/json' } });
  } catch {
    throw new Error('the runtime is not reachable');
  }
  const text = await response.text();
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!response.ok) throw new Error(body?.error ?? `${method} ${path} answered ${response.status}`);
  return body;
}

export const getJson = (path) => request('GET', path);
export const postJson = (path) => request('POST', path);

/** A query string from the defined entries of `params`. */
export function query(params) {
  const defined = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '');
  return defined.length ? `?${new URLSearchParams(defined).toString()}` : '';
}
