// The Flex Consumption (FC1) plan and the Python 3.13 function app, with its app settings.
//
// Flex Consumption takes the runtime, the deployment container and scaling from
// `functionAppConfig` and rejects the settings that used to carry them (FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENTSHARE, ...): none is set here.
@description('Function app name (also its default host name).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Region of the plan and the app.')
param location string

@description('Tags for the plan and the app.')
param tags object = {}

@description('azd service this app hosts (azure.yaml services.<name>).')
param serviceName string = 'api'

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (DefaultAzureCredential, host storage, Application Insights).')
param identityClientId string

@description('Blob container URL the platform deploys the package from.')
param deploymentContainerUrl string

@description('Host storage endpoints (AzureWebJobsStorage__*ServiceUri).')
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string

@description('Application Insights connection string.')
param applicationInsightsConnectionString string

@description('Memory of each instance, MB (Flex Consumption sizes).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('true: IoT Hub and Service Bus with the managed identity; false: connection strings from Key Vault.')
param useManagedIdentity bool = true

@description('IoT hub host name, <hub>.azure-devices.net (managed-identity mode).')
param iotHubHostName string

@description('Service Bus namespace host name, <ns>.servicebus.windows.net (managed-identity mode).')
param serviceBusNamespaceHostName string

@description('Key Vault secret URIs holding the connection strings (connection-string mode).')
param iotHubConnectionStringSecretUri string = ''
param serviceBusConnectionStringSecretUri string = ''

@description('Topic the outcomes go to.')
param outcomeTopic string

@description('NCRONTAB schedule of FeedbackProcessor (six fields, seconds first).')
param feedbackSchedule string = '*/10 * * * * *'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
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
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

// The Functions host's own storage, by identity: no AzureWebJobsStorage connection string.
var hostStorageSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
}

var monitoringSettings = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

var appSettings = {
  FEEDBACK_SCHEDULE: feedbackSchedule
  OUTCOME_TOPIC: outcomeTopic
}

// DefaultAzureCredential() picks the user-assigned identity from AZURE_CLIENT_ID.
var identitySettings = {
  AZURE_CLIENT_ID: identityClientId
  IOTHUB_HOSTNAME: iotHubHostName
  SERVICEBUS__fullyQualifiedNamespace: serviceBusNamespaceHostName
}

// Key Vault references, resolved by the platform with keyVaultReferenceIdentity.
var connectionStringSettings = {
  IOTHUB_CONNECTION_STRING: '@Microsoft.KeyVault(SecretUri=${iotHubConnectionStringSecretUri})'
  SERVICEBUS_CONNECTION: '@Microsoft.KeyVault(SecretUri=${serviceBusConnectionStringSecretUri})'
}

var serviceSettings = useManagedIdentity ? identitySettings : connectionStringSettings

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: union(hostStorageSettings, monitoringSettings, appSettings, serviceSettings)
}

output name string = app.name
output id string = app.id
output defaultHostName string = app.properties.defaultHostName
