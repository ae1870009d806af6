// `azd up` entry point: one resource group with the function app, its storage, Key Vault, monitoring and
// the managed identity they all trust. No secret passes through a parameter or an output (docs/deploy.md).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; it seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region of every resource; it must offer Flex Consumption.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Application (client) id of the Entra ID app registration (docs/deploy.md).')
param entraClientId string

@description('Tenant segment of the authority: organizations (multi-tenant), common, or one tenant id.')
param tenant string = 'organizations'

@description('Comma-separated return URLs the connect flow may redirect to.')
param allowedReturnUrls string

@description('Custom domain serving the app (without https://); empty: the app\'s default host name.')
param customDomain string = ''

@description('Name of a Key Vault certificate as the client credential; empty: the client-secret secret.')
param clientCertificateName string = ''

@description('https URL receiving signed change and status callbacks; empty: callbacks off.')
param saasCallbackUrl string = ''

@description('Key Vault purge protection (on by default): see docs/deploy.md "Tear down" before turning it off.')
param enablePurgeProtection bool = true

@description('Optional: principal id of the deploying user or pipeline, given Key Vault Secrets Officer on the vault so the postprovision hook can write the generated keys. Empty: no such assignment.')
param deployerPrincipalId string = ''

@allowed(['User', 'ServicePrincipal'])
param deployerPrincipalType string = 'User'

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@allowed([2048, 4096])
param instanceMemoryMB int = 2048

@minValue(1)
@description('Always-ready instances for the HTTP functions (webhook, lifecycle, connect, health).')
param httpAlwaysReadyInstances int = 1

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    appPrincipalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    appPrincipalId: identity.outputs.principalId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    appPrincipalId: identity.outputs.principalId
    enablePurgeProtection: enablePurgeProtection
    deployerPrincipalId: deployerPrincipalId
    deployerPrincipalType: deployerPrincipalType
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultName: keyVault.outputs.name
    keyVaultUri: keyVault.outputs.uri
    entraClientId: entraClientId
    tenant: tenant
    allowedReturnUrls: allowedReturnUrls
    customDomain: customDomain
    clientCertificateName: clientCertificateName
    saasCallbackUrl: saasCallbackUrl
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    httpAlwaysReadyInstances: httpAlwaysReadyInstances
  }
}

// Names and URLs only: azd stores outputs in .azure/<env>/.env, and the postprovision hook reads them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output PUBLIC_BASE_URL string = functionApp.outputs.publicBaseUrl
output OAUTH_REDIRECT_URI string = '${functionApp.outputs.publicBaseUrl}/api/oauth/callback'
output SAAS_CALLBACKS_ENABLED bool = !empty(saasCallbackUrl)
