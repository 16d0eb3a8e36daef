// c2d-functions on Azure: a Python 3.13 function app on the Flex Consumption plan (FC1), the IoT
// hub it sends cloud-to-device messages through, the Service Bus topic it publishes outcomes to,
// its host storage, monitoring, and the roles its one managed identity needs.
//
// `azd up` provisions this (parameters from main.parameters.json and the azd environment) and
// deploys the app; see the README's Deploy section.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment: names every resource (through a hash) and tags it.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer Python 3.13 on Flex Consumption: az functionapp list-flexconsumption-runtimes --location <region> --runtime python')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create or reuse (default: rg-<environmentName>).')
param resourceGroupName string = ''

@description('true (default): the app reaches IoT Hub and Service Bus with its managed identity. false: with connection strings kept in Key Vault, read through Key Vault references.')
param useManagedIdentity bool = true

@description('Grant the built-in IoT Hub Data Contributor role instead of the custom role that allows only the four data actions the app uses. Broader: it also allows registry and twin writes, direct methods, jobs and configurations. For when you may not create custom roles.')
param useIotHubDataContributorRole bool = false

@description('IoT Hub tier: F1, S1, S2 or S3 (Basic tiers have no cloud-to-device messages).')
@allowed([
  'F1'
  'S1'
  'S2'
  'S3'
])
param iotHubSku string = 'S1'

@description('IoT Hub units of that tier.')
@minValue(1)
@maxValue(200)
param iotHubUnits int = 1

@description('C2D: deliveries before IoT Hub gives a message up (DeliveryCountExceeded).')
@minValue(1)
@maxValue(100)
param c2dMaxDeliveryCount int = 10

@description('C2D: TTL of a message that sets none (ISO 8601, PT1M to P2D).')
param c2dDefaultTtl string = 'PT1H'

@description('C2D feedback: lock a FeedbackProcessor run holds on a feedback message (ISO 8601, PT5S to PT5M).')
param feedbackLockDuration string = 'PT1M'

@description('C2D feedback: how long feedback waits to be read (ISO 8601, PT1M to P2D).')
param feedbackTtl string = 'PT1H'

@description('C2D feedback: redeliveries of a feedback message that was not completed.')
@minValue(1)
@maxValue(100)
param feedbackMaxDeliveryCount int = 10

@description('Flex Consumption instance memory, MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Flex Consumption: most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('NCRONTAB schedule of FeedbackProcessor (six fields, seconds first).')
param feedbackSchedule string = '*/10 * * * * *'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var outcomeTopicName = 'c2d-outcomes'
var requestQueueName = 'c2d-requests'
var functionAppName = 'func-${resourceToken}'
var keyVaultName = 'kv-${resourceToken}'
var iotHubPolicyName = 'c2d-functions'
var serviceBusSendRuleName = 'c2d-functions-send'
var iotHubSecretName = 'iothub-connection-string'
var serviceBusSecretName = 'servicebus-connection-string'
var keyVaultSecretsUri = 'https://${keyVaultName}${environment().suffixes.keyvaultDns}/secrets/'

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module identity 'core/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${functionAppName}'
    location: location
    tags: tags
  }
}

module storage 'core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package-${resourceToken}'
    requestQueueName: requestQueueName
  }
}

module monitoring 'core/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module iotHub 'core/iothub.bicep' = {
  name: 'iothub'
  scope: rg
  params: {
    name: 'iot-${resourceToken}'
    location: location
    tags: tags
    sku: iotHubSku
    units: iotHubUnits
    c2dMaxDeliveryCount: c2dMaxDeliveryCount
    c2dDefaultTtl: c2dDefaultTtl
    feedbackLockDuration: feedbackLockDuration
    feedbackTtl: feedbackTtl
    feedbackMaxDeliveryCount: feedbackMaxDeliveryCount
    appPolicyName: useManagedIdentity ? '' : iotHubPolicyName
  }
}

module serviceBus 'core/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: 'sb-${resourceToken}'
    location: location
    tags: tags
    topicName: outcomeTopicName
    allowSasKeys: !useManagedIdentity
    sendRuleName: useManagedIdentity ? '' : serviceBusSendRuleName
  }
}

module keyVault 'app/keyvault.bicep' = if (!useManagedIdentity) {
  name: 'keyvault'
  scope: rg
  params: {
    name: keyVaultName
    location: location
    tags: tags
    iotHubName: iotHub.outputs.name
    iotHubPolicyName: iotHubPolicyName
    serviceBusNamespaceName: serviceBus.outputs.name
    topicName: serviceBus.outputs.topicName
    sendRuleName: serviceBusSendRuleName
    iotHubSecretName: iotHubSecretName
    serviceBusSecretName: serviceBusSecretName
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    useManagedIdentity: useManagedIdentity
    useIotHubDataContributorRole: useIotHubDataContributorRole
    iotHubName: iotHub.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    outcomeTopicName: serviceBus.outputs.topicName
    keyVaultName: keyVaultName
  }
  dependsOn: [
    keyVault
  ]
}

module functionApp 'app/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    useManagedIdentity: useManagedIdentity
    iotHubHostName: iotHub.outputs.hostName
    serviceBusNamespaceHostName: serviceBus.outputs.fullyQualifiedNamespace
    iotHubConnectionStringSecretUri: '${keyVaultSecretsUri}${iotHubSecretName}'
    serviceBusConnectionStringSecretUri: '${keyVaultSecretsUri}${serviceBusSecretName}'
    outcomeTopic: serviceBus.outputs.topicName
    feedbackSchedule: feedbackSchedule
  }
  // Roles and secrets first, so the host's first start finds its storage, telemetry and settings usable.
  dependsOn: [
    rbac
    keyVault
  ]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_IOTHUB_NAME string = iotHub.outputs.name
output AZURE_IOTHUB_HOSTNAME string = iotHub.outputs.hostName
output AZURE_SERVICEBUS_NAMESPACE string = serviceBus.outputs.name
output AZURE_SERVICEBUS_FQDN string = serviceBus.outputs.fullyQualifiedNamespace
output OUTCOME_TOPIC string = serviceBus.outputs.topicName
output OUTCOME_SUBSCRIPTIONS array = serviceBus.outputs.subscriptionNames
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output REQUEST_QUEUE string = storage.outputs.requestQueueName
output POISON_QUEUE string = storage.outputs.poisonQueueName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output AZURE_KEY_VAULT_NAME string = useManagedIdentity ? '' : keyVaultName
