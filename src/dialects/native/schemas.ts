// Request bodies of the native API (/v1/...). A route's own fields are the model's (schema.ts
// validates them on write); only what the handler reads before that is checked here.
import { z } from "zod";
import { optional, required } from "../../control/request.ts";

/** PUT /v1/routes/:id: a route of the model; `id`, when given, must be the URL's. */
export const RouteBody = z.looseObject({
  id: optional(z.string()),
  hostname: required(z.string()),
  origin: required(z.string()),
});

/** POST /v1/tokens. */
export const TokenBody = z.looseObject({
  name: required(z.string().max(200)),
  read_only: optional(z.boolean()),
  account_id: optional(z.string().max(128)),
});
