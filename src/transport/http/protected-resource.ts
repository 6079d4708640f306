import type http from 'node:http';

/** The URLs RFC 9728 asks for: the resource this server protects and where its metadata lives. */
export interface ProtectedResource {
  resourceOf(req: http.IncomingMessage): string;
  metadataUrlOf(req: http.IncomingMessage): string;
}

/** `configured`: auth.resource; without it the resource is the MCP path on the Host the client used. */
export function protectedResource(configured: string | undefined, mcpPath: string): ProtectedResource {
  const resourceOf = (req: http.IncomingMessage): string => configured ?? `http://${req.headers.host ?? 'localhost'}${mcpPath}`;
  return {
    resourceOf,
    metadataUrlOf: (req) => {
      const r = new URL(resourceOf(req));
      // RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
      return `${r.origin}/.well-known/oauth-protected-resource${r.pathname === '/' ? '' : r.pathname}`;
    },
  };
}
