"""Request and response schemas of the JSON API (pydantic v2).

One model per request body and per response. The same models validate bodies
(`authserver.api.body`), shape answers (`authserver.api.endpoint`) and generate `/openapi.json`
(`authserver.openapi`), so the document cannot drift from what the server does.
"""
