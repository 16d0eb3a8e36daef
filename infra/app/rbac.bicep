// Every role the app's managed identity gets, each on the narrowest scope that works, each with a
// deterministic name (guid of scope, principal and role), so re-deploying changes nothing.
@description('Principal id of the app\'s user-assigned managed identity: the only principal this module grants anything to.')
param principalId string

@description('Host storage account (deployment container, queues, tables, timer locks).')
param storageAccountName string

@description('Application Insights component the app sends telemetry to.')
param applicationInsightsName string

@description('true: grant the IoT Hub and Service Bus data roles; false: the app uses connection strings from Key Vault instead.')
param useManagedIdentity bool = true

@description('Grant the built-in IoT Hub Data Contributor (broader) instead of the custom C2D role.')
param useIotHubDataContributorRole bool = false

@description('IoT hub the app sends to.')
param iotHubName string

@description('Service Bus namespace and topic the app publishes outcomes to.')
param serviceBusNamespaceName string
param outcomeTopicName string

@description('Key Vault holding the connection strings (connection-string mode).')
param keyVaultName string = ''

// Built-in roles (ids are the same in every tenant).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var iotHubDataContributor = '4fc6c259-987e-4a07-842e-c321cc9d413f'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

// What the app does on IoT Hub, and nothing else: send C2D messages, receive/complete/abandon
// their feedback, purge a device's C2D queue, read device twins (registry queries).
var iotHubDataActions = [
  'Microsoft.Devices/IotHubs/cloudToDeviceMessages/send/action'
  'Microsoft.Devices/IotHubs/cloudToDeviceMessages/feedback/action'
  'Microsoft.Devices/IotHubs/cloudToDeviceMessages/queue/purge/action'
  'Microsoft.Devices/IotHubs/twins/read'
]

var grantIotHubCustomRole = useManagedIdentity && !useIotHubDataContributorRole
var iotHubCustomRoleName = guid(resourceGroup().id, 'c2d-functions-iothub-c2d')
var iotHubRole = useIotHubDataContributorRole ? iotHubDataContributor : iotHubCustomRoleName

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource iotHub 'Microsoft.Devices/IotHubs@2023-06-30' existing = {
  name: iotHubName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource outcomeTopic 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' existing = {
  parent: serviceBus
  name: outcomeTopicName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = if (!useManagedIdentity) {
  name: keyVaultName
}

resource iotHubSenderRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (grantIotHubCustomRole) {
  name: iotHubCustomRoleName
  properties: {
    // Role names are unique per tenant: the subscription and group keep them apart.
    roleName: 'C2D Functions IoT Hub sender (${subscription().subscriptionId}/${resourceGroup().name})'
    description: 'Send cloud-to-device messages, receive their feedback, purge device queues and read twins on IoT hubs in this resource group. Nothing else.'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: iotHubDataActions
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

// Host storage: deployment package and timer locks (blobs), SendC2DQueue (queues), send status (tables).
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry with Microsoft Entra authentication (the component has local auth disabled).
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Publish outcomes: Send on the one topic, not on the namespace.
resource topicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useManagedIdentity) {
  name: guid(outcomeTopic.id, principalId, serviceBusDataSender)
  scope: outcomeTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource iotHubSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useManagedIdentity) {
  name: guid(iotHub.id, principalId, iotHubRole)
  scope: iotHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', useIotHubDataContributorRole ? iotHubDataContributor : iotHubSenderRole.name)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Connection-string mode: the platform reads the two secrets for the Key Vault references.
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!useManagedIdentity) {
  name: guid(keyVault.id, principalId, keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output iotHubRoleDefinitionId string = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', iotHubRole)
