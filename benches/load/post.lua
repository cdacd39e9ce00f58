-- wrk script: POST a JSON body with a token.
-- Environment: SWITCHYARD_TOKEN (the token), SWITCHYARD_BODY (the JSON body),
-- SWITCHYARD_AUTH_SCHEME (optional, default "Bearer"; set it empty to send the bare
-- token, as Unleash's frontend API expects).
local scheme = os.getenv("SWITCHYARD_AUTH_SCHEME") or "Bearer"
local token = os.getenv("SWITCHYARD_TOKEN")
wrk.method = "POST"
wrk.body = os.getenv("SWITCHYARD_BODY")
wrk.headers["Content-Type"] = "application/json"
if scheme == "" then
  wrk.headers["Authorization"] = token
else
  wrk.headers["Authorization"] = scheme .. " " .. token
end
