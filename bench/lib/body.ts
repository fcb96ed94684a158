/** The origin's fixed response body (128 bytes), the same whoever proxies it. */
export const ORIGIN_BODY = "certgate bench origin: a fixed small response, the same for every proxy under test.".padEnd(127, ".") + "\n";
