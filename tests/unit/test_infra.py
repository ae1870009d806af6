"""infra/ and azure.yaml, checked without a Bicep compiler: every Bicep file is parsed with pycep-parser
(syntax and structure, no type checking; docs/deploy.md "How infra/ is tested") and read as data.

Sources for what is checked:
- Flex Consumption: runtime in functionAppConfig, deprecated app settings ("Azure Functions Flex
  Consumption plan hosting", https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan, and
  "App settings reference for Azure Functions", section "Flex Consumption plan deprecations",
  https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations).
- Identity-based host storage ("Connecting to host storage with an identity",
  https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity).
- Built-in role ids ("Azure built-in roles",
  https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from pycep import BicepParser

from shared.config import (
    KEY_VAULT_REFERENCE_PREFIX,
    QUEUES,
    SETTINGS,
    SETTINGS_BY_NAME,
    STORAGE_IDENTITY_FIELDS,
    STORAGE_IDENTITY_PREFIX,
    ReadBy,
    Settings,
)
from shared.store.ports import TABLES

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MODULES = ("identity", "monitoring", "storage", "keyvault", "functionapp")

ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}

# App settings Flex Consumption deprecates (the runtime and scale live in functionAppConfig; there is no
# content share).
FLEX_DEPRECATED = {
    "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY", "FUNCTIONS_WORKER_PROCESS_COUNT",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED", "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTOVERVNET", "WEBSITE_CONTENTSHARE",
    "WEBSITE_DNS_SERVER", "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT", "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_SKIP_CONTENTSHARE_VALIDATION", "WEBSITE_VNET_ROUTE_ALL",
    "AzureWebJobsStorage",
}

SECRET_WORDS = re.compile(r"secret|password|signingkey|statekey|token|connectionstring", re.IGNORECASE)


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def parse(name: str) -> dict[str, Any]:
    path = INFRA / "main.bicep" if name == "main" else INFRA / "modules" / f"{name}.bicep"
    return cast(dict[str, Any], BicepParser().parse(text=path.read_text()))


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's own properties; a conditional resource nests them one level down."""
    config = resource["config"]
    return config["config"] if "condition" in config and "config" in config else config


def condition(resource: dict[str, Any]) -> Any:
    return resource["config"].get("condition")


def resources_of(type_: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(name, symbol, res) for name in ("main", *MODULES)
            for symbol, res in parse(name)["resources"].items() if res["type"] == type_]


def the_resource(type_: str) -> tuple[str, dict[str, Any]]:
    found = resources_of(type_)
    assert len(found) == 1, f"expected one {type_}, found {len(found)}"
    return found[0][0], body(found[0][2])


def variables(module: str) -> dict[str, Any]:
    return {name: v["value"] for name, v in parse(module)["variables"].items()}


def branches(value: Any) -> list[Any]:
    """The values an expression may take: both sides of a conditional, else the value itself."""
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "conditional":
        operands = value["operator"]["operands"]
        return branches(operands["true_value"]) + branches(operands["false_value"])
    return [value]


def app_settings() -> dict[str, Any]:
    found = [body(res) for _, _, res in resources_of("Microsoft.Web/sites/config")
             if body(res)["name"] == "appsettings"]
    assert len(found) == 1
    properties = found[0]["properties"]
    assert isinstance(properties, dict), "app settings must be one literal object, so they can be checked"
    return properties


def flex_host_names() -> set[str]:
    """Host-read names as Flex Consumption takes them: storage in its identity-based form, the runtime
    not at all (it is functionAppConfig.runtime)."""
    names: set[str] = set()
    for spec in SETTINGS:
        if spec.read_by not in (ReadBy.HOST, ReadBy.BOTH):
            continue
        if spec.name == "AzureWebJobsStorage":
            names |= {STORAGE_IDENTITY_PREFIX + suffix for suffix in STORAGE_IDENTITY_FIELDS}
        elif spec.name != "FUNCTIONS_WORKER_RUNTIME":
            names.add(spec.name)
    return names


# --- parsing -------------------------------------------------------------------------------------------


def test_every_bicep_file_parses_and_main_uses_every_module():
    assert {p.relative_to(INFRA).as_posix() for p in bicep_files()} == \
        {"main.bicep"} | {f"modules/{m}.bicep" for m in MODULES}
    for path in bicep_files():
        parsed = BicepParser().parse(text=path.read_text())
        assert parsed["resources"], path
    used = {m["detail"]["path"] for m in parse("main")["modules"].values()}
    assert used == {f"modules/{m}.bicep" for m in MODULES}


def test_module_parameters_passed_from_main_exist_in_the_module():
    for module in parse("main")["modules"].values():
        name = Path(module["detail"]["path"]).stem
        declared = parse(name)["parameters"]
        passed = module["config"]["params"]
        assert set(passed) <= set(declared), name
        required = {p for p, spec in declared.items() if spec["default"] is None}
        assert required <= set(passed), f"{name} misses {required - set(passed)}"


def test_parameters_file_names_only_parameters_of_main():
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = parse("main")["parameters"]
    assert set(parameters) <= set(declared)
    required = {p for p, spec in declared.items() if spec["default"] is None}
    assert required <= set(parameters)


# --- app settings --------------------------------------------------------------------------------------


def test_app_settings_are_exactly_the_canonical_list_in_flex_form():
    product = {s.name for s in SETTINGS if s.read_by in (ReadBy.PRODUCT, ReadBy.BOTH)} - {"AzureWebJobsStorage"}
    assert set(app_settings()) == product | flex_host_names()


def test_no_app_setting_is_one_flex_consumption_deprecates():
    assert not set(app_settings()) & FLEX_DEPRECATED


def test_literal_app_settings_equal_the_defaults_in_shared_config():
    # A changed default in shared/config.py must be changed in infra/ too (or made a parameter).
    # pycep gives a bare identifier and a string literal alike: names of parameters and variables are not literals.
    symbols = set(parse("functionapp")["parameters"]) | set(variables("functionapp"))
    literal = {k: v for k, v in app_settings().items()
               if isinstance(v, str) and "${" not in v and v not in symbols}
    checked = 0
    for name, value in literal.items():
        spec = SETTINGS_BY_NAME.get(name)
        if spec is not None and spec.default is not None:
            assert value == spec.default, name
            checked += 1
    assert checked >= 25


def test_parameters_standing_in_for_defaults_default_to_them():
    main = parse("main")["parameters"]
    assert main["tenant"]["default"] == SETTINGS_BY_NAME["TENANT"].default
    assert app_settings()["TENANT"] == "tenant"


def test_identity_based_storage_settings_are_what_shared_config_accepts():
    settings = app_settings()
    suffixes = {k[len(STORAGE_IDENTITY_PREFIX):] for k in settings if k.startswith(STORAGE_IDENTITY_PREFIX)}
    assert suffixes == set(STORAGE_IDENTITY_FIELDS)
    assert settings[STORAGE_IDENTITY_PREFIX + "credential"] == "managedidentity"
    assert settings[STORAGE_IDENTITY_PREFIX + "clientId"] == "identityClientId"
    # Deployed values, with the service URIs the storage account outputs, pass the product's own parsing.
    env = {name: "" for name in (s.name for s in SETTINGS)}
    env |= {
        "KEY_VAULT_URL": "https://kv-x.vault.azure.net/", "CLIENT_ID": "app", "CLIENT_SECRET": "s",
        "PUBLIC_BASE_URL": "https://func-x.azurewebsites.net", "ALLOWED_RETURN_URLS": "https://saas.example.com/c",
        "CLIENT_STATE_KEYS": "k1:" + "A" * 43 + "=", "CONNECT_SIGNING_KEY": "A" * 43 + "=",
        STORAGE_IDENTITY_PREFIX + "blobServiceUri": "https://stx.blob.core.windows.net/",
        STORAGE_IDENTITY_PREFIX + "queueServiceUri": "https://stx.queue.core.windows.net/",
        STORAGE_IDENTITY_PREFIX + "tableServiceUri": "https://stx.table.core.windows.net/",
        STORAGE_IDENTITY_PREFIX + "credential": settings[STORAGE_IDENTITY_PREFIX + "credential"],
        STORAGE_IDENTITY_PREFIX + "clientId": "11111111-2222-3333-4444-555555555555",
    }
    storage = Settings.from_env(env).storage
    assert storage.connection_string is None
    assert (storage.credential, storage.client_id) == ("managedidentity", "11111111-2222-3333-4444-555555555555")
    assert storage.queue_uri
    assert storage.table_uri
    assert storage.blob_uri
    storage_outputs = parse("storage")["outputs"]
    module = parse("main")["modules"]["functionApp"]["config"]["params"]
    for field in ("storageBlobEndpoint", "storageQueueEndpoint", "storageTableEndpoint"):
        output = module[field]["operator"]["operands"]["operand_2"]["operator"]["operands"]["operand_2"]
        assert output in storage_outputs


def test_public_base_url_is_the_default_host_name_unless_a_custom_domain_is_given():
    value = app_settings()["PUBLIC_BASE_URL"]
    assert sorted(branches(value)) == ["https://${app.properties.defaultHostName}", "https://${customDomain}"]


def test_secrets_are_key_vault_references_or_empty():
    refs = variables("functionapp")
    settings = app_settings()
    secret_names = {s.name for s in SETTINGS if s.secret} - {"AzureWebJobsStorage"}
    assert secret_names == {"CLIENT_SECRET", "CLIENT_STATE_KEYS", "CONNECT_SIGNING_KEY", "SAAS_CALLBACK_SECRET"}
    for name in secret_names:
        values = [refs.get(v, v) if isinstance(v, str) else v for v in branches(settings[name])]
        references = [v for v in values if v != ""]
        assert references, name
        for value in references:
            assert isinstance(value, str), name
            assert value.lower().startswith(KEY_VAULT_REFERENCE_PREFIX), name
            assert "VaultName=${keyVaultName}" in value


def test_the_vault_the_references_name_is_the_one_provisioned():
    module = parse("main")["modules"]["functionApp"]["config"]["params"]
    assert module["keyVaultName"]["operator"]["operands"]["operand_1"] == "keyVault"


def test_no_secret_is_a_parameter_or_an_output():
    for name in ("main", *MODULES):
        parsed = parse(name)
        for param, spec in parsed["parameters"].items():
            if (name, param) != ("functionapp", "applicationInsightsConnectionString"):
                assert not SECRET_WORDS.search(param), f"{name}: parameter {param}"
            assert not any(d["type"] == "secure" for d in spec["decorators"]), f"{name}: parameter {param}"
        outputs = json.dumps(parsed["outputs"])
        assert "@Microsoft.KeyVault" not in outputs
        assert not re.search(r"list(Keys|Secrets|ConnectionStrings)", outputs)
        for output in parsed["outputs"]:
            # The monitoring module hands Application Insights' connection string to the app: not a secret
            # in the settings list (local auth is off, ingestion needs the identity); main outputs nothing
            # of the kind.
            if (name, output) != ("monitoring", "connectionString"):
                assert not SECRET_WORDS.search(output), f"{name}: output {output}"
    assert not SETTINGS_BY_NAME["APPLICATIONINSIGHTS_CONNECTION_STRING"].secret
    parameters = (INFRA / "main.parameters.json").read_text()
    assert not SECRET_WORDS.search(parameters)


def test_app_settings_reference_the_secret_names_the_hook_creates():
    refs = " ".join(v for v in variables("functionapp").values() if isinstance(v, str))
    referenced = set(re.findall(r"SecretName=([a-z0-9-]+)\)", refs))
    hook = (INFRA / "hooks" / "postprovision.sh").read_text()
    generated = set(re.findall(r"^\s*ensure ([a-z0-9-]+) ", hook, re.MULTILINE))
    # The client secret comes from the app registration, never from the hook.
    assert referenced == generated | {"client-secret"}
    assert "client-secret" not in generated


# --- function app --------------------------------------------------------------------------------------


def test_flex_consumption_python_311_with_always_ready_http_instances():
    _, plan = the_resource("Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    _, app = the_resource("Microsoft.Web/sites")
    config = app["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    always_ready = config["scaleAndConcurrency"]["alwaysReady"]
    assert always_ready == [{"name": "http", "instanceCount": "httpAlwaysReadyInstances"}]
    minimum = [d for d in parse("main")["parameters"]["httpAlwaysReadyInstances"]["decorators"]
               if d["type"] == "min_value"]
    assert minimum
    assert int(minimum[0]["argument"]) >= 1


def test_the_app_runs_as_its_user_assigned_identity_only():
    _, app = the_resource("Microsoft.Web/sites")
    assert app["identity"]["type"] == "UserAssigned"
    assert app["properties"]["keyVaultReferenceIdentity"] == "identityId"
    assert app["properties"]["httpsOnly"] is True
    auth = app["properties"]["functionAppConfig"]["deployment"]["storage"]["authentication"]
    assert auth == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    module = parse("main")["modules"]["functionApp"]["config"]["params"]
    for param, output in (("identityId", "id"), ("identityClientId", "clientId")):
        operands = module[param]["operator"]["operands"]
        assert operands["operand_1"] == "identity"
        assert operands["operand_2"]["operator"]["operands"]["operand_2"] == output


# --- storage, vault, monitoring ------------------------------------------------------------------------


def test_storage_has_shared_keys_off_tls_12_and_no_public_blobs():
    _, account = the_resource("Microsoft.Storage/storageAccounts")
    properties = account["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["allowBlobPublicAccess"] is False
    assert properties["supportsHttpsTrafficOnly"] is True


def test_storage_holds_the_products_queues_tables_and_the_deployment_container():
    storage = variables("storage")
    assert tuple(storage["queueNames"]) == QUEUES
    assert tuple(storage["tableNames"]) == TABLES
    _, container = the_resource("Microsoft.Storage/storageAccounts/blobServices/containers")
    assert container["name"] == "deploymentContainerName"
    assert container["properties"]["publicAccess"] == "None"
    _, app = the_resource("Microsoft.Web/sites")
    deployment = app["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert deployment["value"] == "${storageBlobEndpoint}${deploymentContainerName}"


def test_key_vault_uses_rbac_soft_delete_and_purge_protection_by_default():
    _, vault = the_resource("Microsoft.KeyVault/vaults")
    properties = vault["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert branches(properties["enablePurgeProtection"]) == [True, None]
    assert parse("main")["parameters"]["enablePurgeProtection"]["default"] is True
    passed = parse("main")["modules"]["keyVault"]["config"]["params"]["enablePurgeProtection"]
    assert passed == "enablePurgeProtection"


def test_application_insights_on_log_analytics_with_local_auth_off():
    _, component = the_resource("Microsoft.Insights/components")
    assert component["properties"]["DisableLocalAuth"] is True
    assert component["properties"]["WorkspaceResourceId"]["operator"]["operands"]["operand_1"] == "workspace"
    assert app_settings()["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == \
        "ClientId=${identityClientId};Authorization=AAD"


# --- role assignments ----------------------------------------------------------------------------------


def role_assignments() -> list[dict[str, Any]]:
    found = []
    for module, _, res in resources_of("Microsoft.Authorization/roleAssignments"):
        config = body(res)
        scope = config["scope"]
        target = parse(module)["resources"][scope]
        role_id = config["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        found.append({"module": module, "scope_type": target["type"], "scope_existing": target["existing"],
                      "role": ROLES.get(role_id, role_id), "principal": config["properties"]["principalId"],
                      "condition": condition(res), "name_seed": config["name"]})
    return found


def test_each_app_role_is_scoped_to_its_one_resource():
    app = {(a["role"], a["scope_type"]) for a in role_assignments() if a["principal"] == "appPrincipalId"}
    assert app == {
        ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts"),
        ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts"),
        ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts"),
        ("Key Vault Secrets Officer", "Microsoft.KeyVault/vaults"),
        ("Monitoring Metrics Publisher", "Microsoft.Insights/components"),
    }
    assert len([a for a in role_assignments() if a["principal"] == "appPrincipalId"]) == 5
    for assignment in role_assignments():
        # The scope is a resource this template creates (not the resource group or subscription), and the
        # only one of its type in the module.
        assert assignment["scope_existing"] is False
        same_type = [r for r in parse(assignment["module"])["resources"].values()
                     if r["type"] == assignment["scope_type"]]
        assert len(same_type) == 1


def test_the_only_other_assignment_is_the_optional_deployer_one():
    others = [a for a in role_assignments() if a["principal"] != "appPrincipalId"]
    assert len(others) == 1
    deployer = others[0]
    assert (deployer["principal"], deployer["role"], deployer["scope_type"]) == \
        ("deployerPrincipalId", "Key Vault Secrets Officer", "Microsoft.KeyVault/vaults")
    assert deployer["condition"] == {"operator": {"type": "not", "operands": {"bool_value": {
        "function": {"type": "empty", "parameters": {"item_to_test": "deployerPrincipalId"}}}}}}
    assert parse("keyvault")["parameters"]["deployerPrincipalId"]["default"] == ""
    assert parse("main")["parameters"]["deployerPrincipalId"]["default"] == ""


def test_modules_grant_roles_to_the_identity_main_creates():
    modules = parse("main")["modules"]
    for name in ("monitoring", "storage", "keyVault"):
        operands = modules[name]["config"]["params"]["appPrincipalId"]["operator"]["operands"]
        assert operands["operand_1"] == "identity"
        assert operands["operand_2"]["operator"]["operands"]["operand_2"] == "principalId"
    assert modules["keyVault"]["config"]["params"]["deployerPrincipalId"] == "deployerPrincipalId"


def test_every_role_assignment_name_is_stable_and_unique():
    seeds = [json.dumps(a["name_seed"], sort_keys=True) for a in role_assignments()]
    assert all('"guid"' in s for s in seeds)
    assert len(set(seeds)) == len(seeds)


# --- azure.yaml and the package ------------------------------------------------------------------------


def test_azure_yaml_names_the_function_app_service_and_the_python_runtime():
    project = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert project["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert len(project["services"]) == 1
    name, service = next(iter(project["services"].items()))
    assert service == {"project": ".", "language": "python", "host": "function"}
    _, app = the_resource("Microsoft.Web/sites")
    tag = app["tags"]["function"]["parameters"]["arg_2"]
    assert {key.strip("'"): value for key, value in tag.items()} == {"azd-service-name": name}
    hook = project["hooks"]["postprovision"]["posix"]
    assert hook["run"] == "sh infra/hooks/postprovision.sh"
    assert (ROOT / "infra" / "hooks" / "postprovision.sh").exists()


PACKAGE = {"function_app.py", "host.json", "requirements.txt", "shared"}


def funcignore() -> list[str]:
    lines = (ROOT / ".funcignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in funcignore())


def test_funcignore_leaves_only_the_app_in_the_package():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    top = {line.split("/")[0] for line in tracked.stdout.splitlines()}
    assert top >= PACKAGE
    assert {name for name in top if not ignored(name)} == PACKAGE
    for name in ("devstack", "tests", "bench", "node_modules", ".venv", "docs", "infra", "local.settings.json"):
        assert ignored(name), name


@pytest.mark.parametrize("name", sorted(PACKAGE))
def test_the_app_itself_is_not_ignored(name):
    assert not ignored(name)
