"""A minimal, complete provisioning plugin in Python: the same Contact
provisioner as the Rust example (tests/example-plugin). It gets tokens with
the OAuth2 client credentials grant and keeps one Salesforce Contact per
person, upserted by the external-id field `Registry_ID__c`. Everything else
the contract offers raises `unsupported`, and the capabilities say so.

Build (see docs/writing-a-plugin.md, "Python"):

    componentize-py -d wit/0.2.0 -w provisioner componentize app \
        -p tests/example-plugin-python -o example.wasm
"""

import json
from typing import List, Optional, Tuple
from urllib.parse import quote

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.exports.oauth2_server import AuthorizationRequest, ConnectionInfo
from wit_world.exports.plugin_info import (
    Capabilities,
    PluginMetadata,
    ServerForm,
    ServerUrlChoice,
    Setting,
    SettingKind_Boolean,
)
from wit_world.exports.provisioning_target import (
    PlannedStep,
    ProvisionOutcome,
    TargetContext,
)
from wit_world.imports.batch_input import BatchRequests
from wit_world.imports import outgoing_handler, types as http
from wit_world.imports.registry_types import (
    FieldError,
    ProvisionRequest,
    JwtSigningKey,
    Oauth2ServerConfig,
    PluginError_InvalidConfig,
    PluginError_InvalidPerson,
    PluginError_RateLimited,
    PluginError_Remote,
    PluginError_Transport,
    PluginError_Unauthorized,
    PluginError_Unsupported,
    ProvisioningAction,
    RemoteError,
    RemoteRef,
    RemovalEffect,
    TokenSet,
)
from wit_world.imports.streams import StreamError_Closed

API = "/services/data/v62.0"


class PluginInfo(exports.PluginInfo):
    def info(self) -> PluginMetadata:
        return PluginMetadata(
            name="example-contacts-python",
            version="0.1.0",
            description="Keeps a Salesforce Contact per person, upserted by Registry_ID__c.",
            settings=[
                Setting(
                    name="send_email",
                    label="Send email addresses",
                    kind=SettingKind_Boolean(),
                    default_value="true",
                    required=False,
                    help="Copy the person's first email address into the Contact's Email.",
                    shown_when=None,
                )
            ],
            capabilities=Capabilities.CLIENT_CREDENTIALS | Capabilities.PROVISION,
            api_hosts=["*.my.salesforce.com", "*.salesforce.com", "*.force.com"],
            server_form=ServerForm(
                server_urls=[ServerUrlChoice(label="Production", url="https://login.salesforce.com", name_label="", api_hosts=[])],
                help=[("client-id", "The External Client App's Consumer Key.")],
            ),
        )


class Oauth2Server(exports.Oauth2Server):
    def authorization_url(self, config: Oauth2ServerConfig, request: AuthorizationRequest) -> str:
        raise Err(PluginError_Unsupported("only the client credentials grant"))

    def exchange_code(self, config: Oauth2ServerConfig, code: str, redirect_uri: str, code_verifier: Optional[str]) -> TokenSet:
        raise Err(PluginError_Unsupported("only the client credentials grant"))

    def refresh(self, config: Oauth2ServerConfig, tokens: TokenSet) -> TokenSet:
        raise Err(PluginError_Unsupported("client credentials tokens are fetched again, not refreshed"))

    def client_credentials(self, config: Oauth2ServerConfig) -> TokenSet:
        form = f"grant_type=client_credentials&client_id={encode(config.client_id)}&client_secret={encode(config.client_secret)}"
        url = config.server_url.rstrip("/") + "/services/oauth2/token"
        status, body = send("POST", url, [("content-type", "application/x-www-form-urlencoded")], form.encode())
        try:
            answer = json.loads(body)
        except ValueError as e:
            raise Err(PluginError_Transport(f"the token answer is not JSON: {e}"))
        if status != 200:
            # OAuth errors are the configuration's fault: name the field to fix.
            field = "client_secret" if answer.get("error") == "invalid_client" else "client_id"
            message = answer.get("error_description") or "the token request was refused"
            raise Err(PluginError_InvalidConfig(FieldError(field=field, message=message)))
        issued_at = answer.get("issued_at")
        return TokenSet(
            access_token=answer.get("access_token", ""),
            refresh_token=None,
            instance_url=answer.get("instance_url"),
            issued_at=int(issued_at) if issued_at else None,
            expires_at=None,
            scope=answer.get("scope"),
            token_type=answer.get("token_type", "Bearer"),
            extra=[],
        )

    def jwt_bearer(self, config: Oauth2ServerConfig, key: JwtSigningKey) -> TokenSet:
        raise Err(PluginError_Unsupported("jwt-bearer"))

    def revoke(self, config: Oauth2ServerConfig, tokens: TokenSet) -> None:
        raise Err(PluginError_Unsupported("revoke"))

    def check_connection(self, config: Oauth2ServerConfig, tokens: TokenSet) -> ConnectionInfo:
        raise Err(PluginError_Unsupported("check-connection"))


class ProvisioningTarget(exports.ProvisioningTarget):
    def validate_settings(self, settings: List[Tuple[str, str]]) -> None:
        errors = [
            FieldError(field=name, message=f"'{value}' is not true or false")
            for name, value in settings
            if name == "send_email" and value not in ("true", "false")
        ]
        if errors:
            raise Err(errors)

    def check_settings(self, context: TargetContext) -> None:
        return None

    def describe_removal(self, settings: List[Tuple[str, str]]) -> RemovalEffect:
        return RemovalEffect.DELETE

    def preview(self, context: TargetContext, request: ProvisionRequest) -> List[PlannedStep]:
        raise Err(PluginError_Unsupported("preview"))

    def provision(self, context: TargetContext, request: ProvisionRequest) -> ProvisionOutcome:
        instance = context.tokens.instance_url
        if not instance:
            raise Err(PluginError_InvalidConfig(FieldError(field="server_url", message="the token names no instance URL")))
        headers = [("authorization", f"Bearer {context.tokens.access_token}"), ("content-type", "application/json")]
        person = request.person

        if request.action == ProvisioningAction.PERSON_DELETED:
            if request.current is None:
                return outcome(None, "nothing to delete", True)
            remote_id = request.current.remote_id
            status, body = send("DELETE", f"{instance}{API}/sobjects/Contact/{remote_id}", headers, b"")
            if status in (204, 404):  # 404: already gone, which is what was asked
                return outcome(None, f"deleted Contact {remote_id}", True)
            raise Err(remote_error(status, body))

        # Salesforce requires LastName: say which attribute to fix, never send it empty.
        family = (person.name.family or "").strip()
        if not family:
            raise Err(PluginError_InvalidPerson(FieldError(field="name.family", message="a Contact needs a family name")))
        fields = {"FirstName": person.name.given, "LastName": family}
        if ("send_email", "true") in context.settings and person.emails:
            fields["Email"] = person.emails[0].address
        url = f"{instance}{API}/sobjects/Contact/Registry_ID__c/{encode(person.id)}"
        status, body = send("PATCH", url, headers, json.dumps(fields).encode())
        if status not in (200, 201):
            raise Err(remote_error(status, body))
        remote_id = json.loads(body).get("id", "")
        verb = "created" if status == 201 else "updated"
        return outcome(RemoteRef(object_type="Contact", remote_id=remote_id), f"{verb} Contact {remote_id}", False)

    def provision_batch(self, context: TargetContext, requests: BatchRequests):
        raise Err(PluginError_Unsupported("provision-batch"))

    def provision_group(self, context: TargetContext, request) -> ProvisionOutcome:
        raise Err(PluginError_Unsupported("provision-group"))

    def batch_size(self, settings: List[Tuple[str, str]]) -> Optional[int]:
        return None

    def poll_batch(self, context: TargetContext, requests: BatchRequests, reference: str):
        raise Err(PluginError_Unsupported("poll-batch"))


def outcome(remote: Optional[RemoteRef], summary: str, removed: bool) -> ProvisionOutcome:
    return ProvisionOutcome(remote=remote, summary=summary, removed=removed, usage=None)


def remote_error(status: int, body: bytes):
    """Salesforce's error answer as the variant that tells the host what to do."""
    try:
        first = json.loads(body)[0]
    except (ValueError, IndexError, KeyError, TypeError):
        first = {}
    code = first.get("errorCode", "UNKNOWN")
    message = first.get("message", "no message")
    if status == 401:
        return PluginError_Unauthorized(message)
    if code == "REQUEST_LIMIT_EXCEEDED":
        return PluginError_RateLimited(None)
    retryable = status >= 500 or code == "UNABLE_TO_LOCK_ROW"
    return PluginError_Remote(RemoteError(code=code, message=message, status=status, retryable=retryable))


def encode(text: str) -> str:
    return quote(text, safe="")


METHODS = {"GET": http.Method_Get(), "POST": http.Method_Post(), "PATCH": http.Method_Patch(), "DELETE": http.Method_Delete()}


def send(method: str, url: str, headers: List[Tuple[str, str]], body: bytes) -> Tuple[int, bytes]:
    """One HTTP exchange through wasi:http, the only way out of the sandbox.
    A request the host's allowlist refuses raises a transport error."""
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    request = http.OutgoingRequest(http.Fields.from_list([(k, v.encode()) for k, v in headers]))
    request.set_method(METHODS[method])
    request.set_scheme(http.Scheme_Https() if scheme == "https" else http.Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query(slash + path if slash else "/")
    outgoing = request.body()
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        raise Err(PluginError_Transport(f"{method} {url}: {e.value}"))
    if body:
        stream = outgoing.write()
        for i in range(0, len(body), 4096):
            stream.blocking_write_and_flush(body[i : i + 4096])
        stream.__exit__(None, None, None)
    http.OutgoingBody.finish(outgoing, None)
    while (answer := future.get()) is None:
        future.subscribe().block()
    # Ok(Ok(response)), or Ok(Err(error-code)) when the request failed,
    # e.g. HTTP-request-denied for a host the allowlist does not name.
    if not isinstance(answer, Ok) or isinstance(answer.value, Err):
        reason = answer.value.value if isinstance(answer, Ok) else "no response"
        raise Err(PluginError_Transport(f"{method} {url}: {reason}"))
    response = answer.value.value
    status = response.status()
    incoming = response.consume()
    stream = incoming.stream()
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(64 * 1024))
        except Err as e:
            if isinstance(e.value, StreamError_Closed):
                break
            raise Err(PluginError_Transport(f"{method} {url}: reading the response failed"))
    stream.__exit__(None, None, None)
    http.IncomingBody.finish(incoming)
    return status, b"".join(chunks)
