// Distinguished names as Node prints them (one RDN per line, ASN.1 order, values already
// RFC 2253-escaped), in the forms certgate shows: to rules, headers and admin APIs.

/** RFC 2253: most specific RDN first, comma-separated, e.g. "CN=client,O=Example,C=US". */
export function rfc2253(nodeName: string): string {
  return nodeName.split("\n").reverse().join(",");
}

/** The legacy OpenSSL one-line form, e.g. "/C=US/O=Example/CN=client". */
export function legacyDn(nodeName: string): string {
  return "/" + nodeName.split("\n").join("/");
}
