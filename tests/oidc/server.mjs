// A real OpenID provider (panva's oidc-provider) for the tests, on 127.0.0.1.
// Reads its configuration from the JSON file named by OIDC_CONFIG:
//   { "port": 0, "kid": "k1", "clients": [...], "accounts_file": "/path/accounts.json" }
// The accounts file is read on every sign-in, so a test can change a person's groups:
//   { "alice": { "password": "...", "email": "...", "name": "...", "groups": [...] } }
// Prints "listening <port>" once ready. A new "kid" on restart rotates the signing key.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { generateKeyPair, exportJWK } from "jose";
import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.env.OIDC_CONFIG, "utf8"));
const accounts = () => JSON.parse(readFileSync(config.accounts_file, "utf8"));

const { privateKey } = await generateKeyPair("RS256", { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: config.kid, use: "sig", alg: "RS256" };

const issuer = `http://127.0.0.1:${config.port}`;
const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [jwk] },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"], groups: ["groups"] },
  scopes: ["openid", "email", "profile", "groups"],
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  ttl: { IdToken: config.id_token_ttl || 3600 },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const person = accounts()[id];
    if (!person) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: person.email, email_verified: true, name: person.name, groups: person.groups };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid email profile groups");
    await grant.save();
    return grant;
  },
});

const page = (uid, error) => `<!doctype html><html lang="en"><title>Sign in</title><main><h1>Test provider</h1>
${error ? `<p class="error">${error}</p>` : ""}
<form method="post" action="/interaction/${uid}"><label>Login <input name="login"></label>
<label>Password <input name="password" type="password"></label><button type="submit">Sign in</button></form></main></html>`;

async function body(req) {
  let data = "";
  for await (const chunk of req) data += chunk;
  return Object.fromEntries(new URLSearchParams(data));
}

const callback = provider.callback();
const server = createServer(async (req, res) => {
  const match = req.url.match(/^\/interaction\/([^/?]+)/);
  if (!match) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (req.method === "GET") {
      res.setHeader("content-type", "text/html");
      return res.end(page(details.uid));
    }
    const form = await body(req);
    const person = accounts()[form.login];
    if (!person || person.password !== form.password) {
      res.statusCode = 401;
      res.setHeader("content-type", "text/html");
      return res.end(page(details.uid, "wrong login or password"));
    }
    await provider.interactionFinished(req, res, { login: { accountId: form.login } }, { mergeWithLastSubmission: false });
  } catch (err) {
    res.statusCode = 400;
    res.end(String(err));
  }
});
server.listen(config.port, "127.0.0.1", () => console.log(`listening ${server.address().port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
