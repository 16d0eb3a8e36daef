// Connection-string mode only: a Key Vault (RBAC authorization) holding the app's IoT Hub and
// Service Bus connection strings. The app settings are Key Vault references to these secrets,
// so no secret is stored in the app's configuration or in deployment outputs.
@description('Key Vault name.')
param name string

@description('Region of the vault.')
param location string

@description('Tags for the vault.')
param tags object = {}

@description('IoT hub and the shared access policy (RegistryRead, ServiceConnect) whose key goes into the secret.')
param iotHubName string
param iotHubPolicyName string

@description('Service Bus namespace, topic and topic-level Send rule whose connection string goes into the secret.')
param serviceBusNamespaceName string
param topicName string
param sendRuleName string

@description('Secret names (the app settings reference them).')
param iotHubSecretName string = 'iothub-connection-string'
param serviceBusSecretName string = 'servicebus-connection-string'

resource hub 'Microsoft.Devices/IotHubs@2023-06-30' existing = {
  name: iotHubName
}

resource sendRule 'Microsoft.ServiceBus/namespaces/topics/authorizationRules@2024-01-01' existing = {
  name: '${serviceBusNamespaceName}/${topicName}/${sendRuleName}'
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
  }
}

resource iotHubSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: iotHubSecretName
  properties: {
    contentType: 'IoT Hub service connection string'
    value: 'HostName=${hub.properties.hostName};SharedAccessKeyName=${iotHubPolicyName};SharedAccessKey=${listKeys(resourceId('Microsoft.Devices/IotHubs/IotHubKeys', iotHubName, iotHubPolicyName), '2023-06-30').primaryKey}'
  }
}

resource serviceBusSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: serviceBusSecretName
  properties: {
    contentType: 'Service Bus connection string (Send on the outcome topic)'
    value: sendRule.listKeys().primaryConnectionString
  }
}

output name string = vault.name
output iotHubSecretUri string = iotHubSecret.properties.secretUri
output serviceBusSecretUri string = serviceBusSecret.properties.secretUri
