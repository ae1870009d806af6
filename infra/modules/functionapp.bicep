// The function app on Flex Consumption (Python 3.11) and its app settings: every setting the product
// reads (shared/config.py SETTINGS) plus the host's, in the forms Flex Consumption expects.
param name string
param planName string
param location string
param tags object
@description('Resource id, client id of the app\'s user-assigned managed identity.')
param identityId string
param identityClientId string
param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param deploymentContainerName string
param applicationInsightsConnectionString string
param keyVaultName string
param keyVaultUri string
param entraClientId string
param tenant string
param allowedReturnUrls string
param customDomain string
param clientCertificateName string
param saasCallbackUrl string
param maximumInstanceCount int
param instanceMemoryMB int
param httpAlwaysReadyInstances int

// Secrets are Key Vault references resolved by the platform with the app's identity; their values never
// pass through a parameter, an output or the deployment history. The postprovision hook creates the
// generated ones (infra/hooks/postprovision.sh); the client secret is put there by whoever registers the app.
var clientSecretRef = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=client-secret)'
var clientStateKeysRef = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=client-state-keys)'
var connectSigningKeyRef = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=connect-signing-key)'
var saasCallbackSecretRef = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=saas-callback-secret)'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references resolve with the user-assigned identity, not a system-assigned one.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        // Graph's validation handshake allows 10 s, a cold start included: keep the HTTP group warm.
        alwaysReady: [
          {
            name: 'http'
            instanceCount: httpAlwaysReadyInstances
          }
        ]
      }
      // Flex Consumption takes the runtime from here; FUNCTIONS_WORKER_RUNTIME is not an app setting.
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: {
    // Read by the host (and, for storage, the product too): identity-based storage.
    AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
    AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
    AzureWebJobsStorage__tableServiceUri: storageTableEndpoint
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    RECONCILE_SCHEDULE: '0 */5 * * * *'
    RENEW_SCHEDULE: '0 */15 * * * *'
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // Read by the product, required.
    KEY_VAULT_URL: keyVaultUri
    CLIENT_ID: entraClientId
    CLIENT_SECRET: empty(clientCertificateName) ? clientSecretRef : ''
    CLIENT_CERTIFICATE_NAME: clientCertificateName
    PUBLIC_BASE_URL: empty(customDomain) ? 'https://${app.properties.defaultHostName}' : 'https://${customDomain}'
    CLIENT_STATE_KEYS: clientStateKeysRef
    CONNECT_SIGNING_KEY: connectSigningKeyRef
    ALLOWED_RETURN_URLS: allowedReturnUrls
    // Read by the product, with defaults (the same values as shared/config.py; a test keeps them equal).
    GRAPH_BASE_URL: 'https://graph.microsoft.com/v1.0'
    AUTHORITY_HOST: 'https://login.microsoftonline.com'
    TENANT: tenant
    SCOPES: 'Calendars.ReadWrite User.Read'
    LOCAL_CA_BUNDLE: ''
    // azure-identity's DefaultAzureCredential (Key Vault) uses the user-assigned identity.
    AZURE_CLIENT_ID: identityClientId
    SYNC_WINDOW_PAST_DAYS: '30'
    SYNC_WINDOW_FUTURE_DAYS: '365'
    RECONCILE_INTERVAL_MINUTES: '60'
    DRIFT_WINDOW_MINUTES: '10'
    SLICE_MAX_PAGES: '20'
    SLICE_MAX_SECONDS: '120'
    LEASE_SECONDS: '300'
    DELTA_PAGE_SIZE: '50'
    DELTA_REPLICATION_MARGIN_SECONDS: '10'
    COALESCE_DELAY_SECONDS: '5'
    THROTTLE_INLINE_MAX_SECONDS: '10'
    SUBSCRIPTION_LIFETIME_MINUTES: '4230'
    RENEW_MARGIN_MINUTES: '720'
    PER_CALENDAR_SUBSCRIPTIONS: 'false'
    TOKEN_KEEPALIVE_DAYS: '30'
    TOKEN_WRITE_AGE_HOURS: '24'
    CONNECT_LINK_MINUTES: '30'
    RESULT_TOKEN_MINUTES: '15'
    DELETE_BREAKER_SHARE: '0.5'
    DELETE_BREAKER_MIN_EVENTS: '10'
    BREAKER_CONFIRM_MINUTES: '15'
    TOMBSTONE_RETENTION_DAYS: '30'
    FEED_RETENTION_DAYS: '14'
    JOURNAL_RETENTION_DAYS: '30'
    CONFLICT_POLICY: 'saas_wins'
    ATTENDEE_POLICY: 'none'
    // Optional features: off while empty (callbacks need both the URL and the secret).
    SAAS_CALLBACK_URL: saasCallbackUrl
    SAAS_CALLBACK_SECRET: empty(saasCallbackUrl) ? '' : saasCallbackSecretRef
    CALLBACK_REPLAY_WINDOW_SECONDS: '300'
    CALLBACK_RETRY_BASE_SECONDS: '10'
    CALLBACK_RETRY_MAX_SECONDS: '3600'
    SHARED_CALENDARS: 'false'
    SHARED_POLL_MINUTES: '15'
  }
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
output publicBaseUrl string = empty(customDomain) ? 'https://${app.properties.defaultHostName}' : 'https://${customDomain}'
