import type http from 'node:http';
import { denialToHttp, type HttpRefusal } from '../../server/surface.js';

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/** A JSON-RPC error without an id: the body could not be read as a request to answer. */
export function sendJsonRpcError(
  res: http.ServerResponse,
  status: number,
  code: number,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  sendJson(res, status, { jsonrpc: '2.0', error: { code, message }, id: null }, headers);
}

/** A request the transport refuses itself, answered through the one Denial→HTTP mapping. */
export function sendRefusal(res: http.ServerResponse, refusal: HttpRefusal, headers: Readonly<Record<string, string>> = {}): void {
  const answer = denialToHttp(refusal, headers);
  sendJson(res, answer.status, answer.body, answer.headers);
}
