-- wrk script: POST a JSON body with a bearer token.
-- Environment: SWITCHYARD_TOKEN (the token), SWITCHYARD_BODY (the JSON body).
wrk.method = "POST"
wrk.body = os.getenv("SWITCHYARD_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SWITCHYARD_TOKEN")
